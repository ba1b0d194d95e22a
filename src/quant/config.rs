//! [`LutConfig`]: which parts of a model to palettize, at how many bits, and its CLI syntax.

use std::fmt;

use super::QuantError;
use super::palettize::SUPPORTED_BITS;

/// What [`palettize_module`](super::palettize_module) palettizes.
///
/// The three parts follow ANEMLL's `--lut1/--lut2/--lut3` (embeddings, FFN, LM head); `None`
/// leaves that part's weights dense.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LutConfig {
    /// Bits for the weights of `layer{i}.*`, `chunk{k}.*` and `final_norm.*` functions.
    pub ffn: Option<u32>,
    /// Bits for the weights of `lm_head.*` functions.
    pub lm_head: Option<u32>,
    /// Bits for the embedding table of `embed.*` functions.
    pub embed: Option<u32>,
    /// Rows of axis 0 (output channels) per lookup table; ANEMLL uses 8.
    pub group_size: usize,
    /// Weights with fewer elements stay dense. The default, 2049, reproduces coremltools,
    /// which palettizes a const only if it has *more than* `weight_threshold = 2048`
    /// elements.
    pub min_elements: usize,
}

impl Default for LutConfig {
    /// Nothing palettized; ANEMLL's group size and coremltools' threshold.
    fn default() -> Self {
        LutConfig {
            ffn: None,
            lm_head: None,
            embed: None,
            group_size: LutConfig::DEFAULT_GROUP_SIZE,
            min_elements: LutConfig::DEFAULT_MIN_ELEMENTS,
        }
    }
}

/// Bits or `none`; `part` names the part in the error message.
fn parse_bits(part: Option<&str>, value: &str) -> Result<Option<u32>, QuantError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(b) if SUPPORTED_BITS.contains(&b) => Ok(Some(b)),
        _ => Err(QuantError::Config(format!(
            "--lut: {}bits must be one of 1, 2, 3, 4, 6, 8 or `none`, got `{value}`",
            part.map_or(String::new(), |p| format!("{p}: "))
        ))),
    }
}

impl LutConfig {
    /// ANEMLL's group size (coremltools `group_size=8`).
    pub const DEFAULT_GROUP_SIZE: usize = 8;
    /// coremltools' default `weight_threshold` (2048) plus one: see [`LutConfig::min_elements`].
    pub const DEFAULT_MIN_ELEMENTS: usize = 2049;

    /// Parses the `--lut` value: comma-separated `part=bits` with parts `ffn`, `lm_head` and
    /// `embed` and bits `1, 2, 3, 4, 6, 8` or `none`, e.g. `ffn=6,lm_head=6,embed=none`. A
    /// part not named stays dense. Two shorthands: `none` (nothing) and a bare bit count `N`
    /// (`ffn=N,lm_head=N`, the embeddings dense as in ANEMLL's default). Group size and
    /// threshold take their defaults; see [`LutConfig::with_group_size`].
    pub fn parse(spec: &str) -> Result<LutConfig, QuantError> {
        let mut cfg = LutConfig::default();
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(QuantError::Config("--lut: empty; expected e.g. `ffn=6,lm_head=6,embed=none`".into()));
        }
        if !spec.contains('=') {
            let bits = parse_bits(None, spec)?;
            cfg.ffn = bits;
            cfg.lm_head = bits;
            return Ok(cfg);
        }
        let mut seen: Vec<&str> = Vec::new();
        for item in spec.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                return Err(QuantError::Config(format!("--lut: `{}` is not `part=bits`", item.trim())));
            };
            let key = key.trim();
            let slot = match key {
                "ffn" => &mut cfg.ffn,
                "lm_head" => &mut cfg.lm_head,
                "embed" => &mut cfg.embed,
                _ => {
                    return Err(QuantError::Config(format!(
                        "--lut: unknown part `{key}`; the parts are ffn, lm_head and embed"
                    )));
                }
            };
            if seen.contains(&key) {
                return Err(QuantError::Config(format!("--lut: part `{key}` given twice")));
            }
            seen.push(key);
            *slot = parse_bits(Some(key), value)?;
        }
        Ok(cfg)
    }

    /// Parses the `--lut-group-size` value: an integer ≥ 1.
    pub fn parse_group_size(value: &str) -> Result<usize, QuantError> {
        match value.trim().parse::<usize>() {
            Ok(g) if g >= 1 => Ok(g),
            _ => Err(QuantError::Config(format!("--lut-group-size must be an integer ≥ 1, got `{}`", value.trim()))),
        }
    }

    /// The same configuration with another group size.
    pub fn with_group_size(mut self, group_size: usize) -> LutConfig {
        self.group_size = group_size;
        self
    }

    /// True if no part is palettized.
    pub fn is_off(&self) -> bool {
        self.ffn.is_none() && self.lm_head.is_none() && self.embed.is_none()
    }
}

impl fmt::Display for LutConfig {
    /// The `--lut` syntax, all three parts spelled out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |v: Option<u32>| v.map_or("none".to_string(), |b| b.to_string());
        write!(f, "ffn={},lm_head={},embed={}", b(self.ffn), b(self.lm_head), b(self.embed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts_and_shorthands() {
        let c = LutConfig::parse("ffn=6,lm_head=6,embed=none").unwrap();
        assert_eq!((c.ffn, c.lm_head, c.embed, c.group_size, c.min_elements), (Some(6), Some(6), None, 8, 2049));
        assert_eq!(c.to_string(), "ffn=6,lm_head=6,embed=none");
        assert_eq!(LutConfig::parse(&c.to_string()).unwrap(), c);
        let c = LutConfig::parse(" embed = 8 , ffn=1").unwrap();
        assert_eq!((c.ffn, c.lm_head, c.embed), (Some(1), None, Some(8)));
        let c = LutConfig::parse("4").unwrap();
        assert_eq!((c.ffn, c.lm_head, c.embed), (Some(4), Some(4), None));
        assert!(LutConfig::parse("none").unwrap().is_off());
        assert_eq!(LutConfig::parse("ffn=2").unwrap().with_group_size(16).group_size, 16);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let msg = |s: &str| LutConfig::parse(s).unwrap_err().to_string();
        assert!(msg("ffn=5").starts_with("--lut: ffn: bits must be one of 1, 2, 3, 4, 6, 8"), "{}", msg("ffn=5"));
        assert_eq!(msg("7"), "--lut: bits must be one of 1, 2, 3, 4, 6, 8 or `none`, got `7`");
        assert!(msg("ffn=six").contains("`six`"));
        assert!(msg("7").contains("got `7`"));
        assert!(msg("mlp=4").contains("unknown part `mlp`"));
        assert!(msg("ffn=4,ffn=6").contains("given twice"));
        assert!(msg("ffn=4,lm_head").contains("is not `part=bits`"));
        assert!(msg("").contains("empty"));
        assert!(LutConfig::parse_group_size("0").is_err());
        assert!(LutConfig::parse_group_size("-8").is_err());
        assert_eq!(LutConfig::parse_group_size("8").unwrap(), 8);
    }
}
