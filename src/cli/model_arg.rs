//! Resolving a MODEL argument: a HuggingFace folder, a GGUF file, or a hub id
//! (`org/name`) found in the local Hugging Face cache. The tool never goes to the network.

use std::path::{Path, PathBuf};

use super::CliError;

/// The cache roots searched for hub ids, in huggingface_hub's order: `$HF_HUB_CACHE`, then
/// `$HF_HOME/hub`, then `$XDG_CACHE_HOME/huggingface/hub`, then `~/.cache/huggingface/hub`.
pub fn hub_cache_roots() -> Vec<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(cache) = var("HF_HUB_CACHE") {
        return vec![cache];
    }
    if let Some(home) = var("HF_HOME") {
        return vec![home.join("hub")];
    }
    let mut roots = Vec::new();
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        roots.push(xdg.join("huggingface").join("hub"));
    }
    if let Some(home) = var("HOME") {
        roots.push(home.join(".cache").join("huggingface").join("hub"));
    }
    roots
}

/// Whether `s` has the shape of a hub id: `org/name`, each part made of letters, digits,
/// `-`, `_` and `.`, not starting with `.` (so `./x` and `../x` stay paths).
pub fn looks_like_hub_id(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(s.split_once('/'), Some((org, name)) if part(org) && part(name))
}

/// The snapshot folder of hub id `id` under cache `root`: `models--org--name/snapshots/<rev>`
/// where `<rev>` is the commit `refs/main` names, or the only snapshot there is.
pub fn snapshot_in(root: &Path, id: &str) -> Option<PathBuf> {
    let repo = root.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if !rev.trim().is_empty() && dir.is_dir() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(&snapshots).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    (dirs.len() == 1).then(|| dirs.remove(0))
}

/// The model path for argument `arg`: the path itself when it exists, else the cached
/// snapshot of a hub id; a missing one is a usage error naming where we looked and the
/// command that downloads it.
pub fn resolve_model(arg: &Path) -> Result<PathBuf, CliError> {
    if arg.exists() {
        return Ok(arg.to_path_buf());
    }
    let text = arg.to_string_lossy();
    if !looks_like_hub_id(&text) {
        return Err(CliError::input(format!("{}: no such file or folder", arg.display())));
    }
    let roots = hub_cache_roots();
    if let Some(dir) = roots.iter().find_map(|root| snapshot_in(root, &text)) {
        return Ok(dir);
    }
    let looked: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(CliError::input(format!(
        "{text}: not a local path, and no snapshot of this hub id in the Hugging Face cache ({}); \
         anemllc never downloads: fetch it first with `huggingface-cli download {text}` (or `hf download {text}`)",
        if looked.is_empty() { "no cache folder known: set HF_HUB_CACHE".to_string() } else { looked.join(", ") }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_recognised() {
        assert!(looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
        assert!(looks_like_hub_id("meta-llama/Llama-3.2-1B"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/x"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("plain"));
        assert!(!looks_like_hub_id("../x"));
    }

    #[test]
    fn snapshot_follows_refs_main() {
        let root = std::env::temp_dir().join(format!("anemllc-hub-{}", std::process::id()));
        let repo = root.join("models--org--name");
        for rev in ["aaa", "bbb"] {
            std::fs::create_dir_all(repo.join("snapshots").join(rev)).unwrap();
        }
        // Two snapshots and no ref: ambiguous.
        assert_eq!(snapshot_in(&root, "org/name"), None);
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "bbb\n").unwrap();
        assert_eq!(snapshot_in(&root, "org/name"), Some(repo.join("snapshots").join("bbb")));
        assert_eq!(snapshot_in(&root, "org/other"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
