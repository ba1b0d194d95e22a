//! `Manifest.json` of a `.mlpackage`: the item table that points at the model spec and the
//! weights directory.
//!
//! Written exactly as coremltools' `libmodelpackage` does (three top-level keys, four
//! strings per item, keys sorted, 4-space indentation, trailing newline), except that the
//! item identifiers are derived from the package content instead of being random, so the
//! same content always gives the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only manifest version written; readers accept versions up to it.
pub const FILE_FORMAT_VERSION: &str = "1.0.0";
/// Author of both items (the Core ML item namespace under `Data/`).
pub const AUTHOR: &str = "com.apple.CoreML";
pub const MODEL_ITEM: &str = "model.mlmodel";
pub const WEIGHTS_ITEM: &str = "weights";

/// One item: the path is `<author>/<name>` relative to `Data/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub author: String,
    pub description: String,
    pub name: String,
    pub path: String,
}

/// The manifest. Field order = key order on disk (alphabetical, as coremltools writes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "fileFormatVersion")]
    pub file_format_version: String,
    #[serde(rename = "itemInfoEntries")]
    pub item_info_entries: BTreeMap<String, ItemInfo>,
    #[serde(rename = "rootModelIdentifier")]
    pub root_model_identifier: String,
}

impl Manifest {
    /// The standard two-item manifest with the given identifiers.
    pub fn new(model_id: &str, weights_id: &str) -> Manifest {
        let item = |name: &str, description: &str| ItemInfo {
            author: AUTHOR.to_string(),
            description: description.to_string(),
            name: name.to_string(),
            path: format!("{AUTHOR}/{name}"),
        };
        let mut entries = BTreeMap::new();
        entries.insert(weights_id.to_string(), item(WEIGHTS_ITEM, "CoreML Model Weights"));
        entries.insert(model_id.to_string(), item(MODEL_ITEM, "CoreML Model Specification"));
        Manifest {
            file_format_version: FILE_FORMAT_VERSION.to_string(),
            item_info_entries: entries,
            root_model_identifier: model_id.to_string(),
        }
    }

    /// The JSON text: sorted keys, 4-space indentation, ending in `}\n`.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.serialize(&mut ser).expect("a manifest always serialises");
        let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
        text.push('\n');
        text
    }

    /// Parses and checks a manifest: version ≤ 1.0.0, every entry complete, the root
    /// identifier present. Returns the root item's path (relative to `Data/`).
    pub fn parse(text: &str) -> Result<(Manifest, String), String> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let version: Vec<u64> = m
            .file_format_version
            .split('.')
            .map(|p| p.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("fileFormatVersion {:?} is not major.minor.patch", m.file_format_version))?;
        if version.len() != 3 || version > vec![1, 0, 0] {
            return Err(format!("unsupported fileFormatVersion {}", m.file_format_version));
        }
        let root = m
            .item_info_entries
            .get(&m.root_model_identifier)
            .ok_or_else(|| format!("rootModelIdentifier {} names no item", m.root_model_identifier))?;
        let path = root.path.clone();
        Ok((m, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let m = Manifest::new("b", "a");
        let json = m.to_json();
        assert!(
            json.starts_with("{\n    \"fileFormatVersion\": \"1.0.0\",\n    \"itemInfoEntries\": {\n        \"a\": {")
        );
        assert!(json.ends_with("    \"rootModelIdentifier\": \"b\"\n}\n"));
        let (back, path) = Manifest::parse(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(path, "com.apple.CoreML/model.mlmodel");
    }
}
