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
    /// Mixed bits (`auto:B`): per part (ffn, lm_head, embed), an average-bits budget in
    /// hundredths of a bit. Such a part's `ffn`/`lm_head`/`embed` entry holds
    /// [`AUTO_PLACEHOLDER_BITS`]; each weight's bits are chosen by measured sensitivity
    /// (`crate::quant::tuning`).
    pub auto: [Option<u32>; 3],
}

/// The bits an `auto:B` part carries until the tuning decides per weight.
pub const AUTO_PLACEHOLDER_BITS: u32 = 8;

impl Default for LutConfig {
    /// Nothing palettized; ANEMLL's group size and coremltools' threshold.
    fn default() -> Self {
        LutConfig {
            ffn: None,
            lm_head: None,
            embed: None,
            group_size: LutConfig::DEFAULT_GROUP_SIZE,
            min_elements: LutConfig::DEFAULT_MIN_ELEMENTS,
            auto: [None; 3],
        }
    }
}

/// `auto:B` (an average-bits budget, 1 ≤ B ≤ 8, in hundredths), or `None` for anything else.
fn parse_auto(part: Option<&str>, value: &str) -> Result<Option<u32>, QuantError> {
    let Some(budget) = value.trim().strip_prefix("auto:") else { return Ok(None) };
    match budget.trim().parse::<f64>() {
        Ok(b) if (1.0..=8.0).contains(&b) => Ok(Some((b * 100.0).round() as u32)),
        _ => Err(QuantError::Config(format!(
            "--lut: {}`auto:B` needs an average-bits budget B between 1 and 8, got `{budget}`",
            part.map_or(String::new(), |p| format!("{p}: "))
        ))),
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
            if let Some(budget) = parse_auto(None, spec)? {
                cfg.ffn = Some(AUTO_PLACEHOLDER_BITS);
                cfg.lm_head = Some(AUTO_PLACEHOLDER_BITS);
                cfg.auto = [Some(budget), Some(budget), None];
                return Ok(cfg);
            }
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
            let (slot, index) = match key {
                "ffn" => (&mut cfg.ffn, 0),
                "lm_head" => (&mut cfg.lm_head, 1),
                "embed" => (&mut cfg.embed, 2),
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
            if let Some(budget) = parse_auto(Some(key), value)? {
                *slot = Some(AUTO_PLACEHOLDER_BITS);
                cfg.auto[index] = Some(budget);
            } else {
                *slot = parse_bits(Some(key), value)?;
            }
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

    /// The average-bits budget of an `auto:B` part, in bits.
    pub fn budget(&self, part_index: usize) -> Option<f64> {
        self.auto.get(part_index).copied().flatten().map(|c| f64::from(c) / 100.0)
    }

    /// True if no part is palettized.
    pub fn is_off(&self) -> bool {
        self.ffn.is_none() && self.lm_head.is_none() && self.embed.is_none()
    }
}

impl fmt::Display for LutConfig {
    /// The `--lut` syntax, all three parts spelled out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |v: Option<u32>, auto: Option<u32>| match auto {
            Some(c) => format!("auto:{}", c as f64 / 100.0),
            None => v.map_or("none".to_string(), |b| b.to_string()),
        };
        write!(
            f,
            "ffn={},lm_head={},embed={}",
            b(self.ffn, self.auto[0]),
            b(self.lm_head, self.auto[1]),
            b(self.embed, self.auto[2])
        )
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
        let c = LutConfig::parse("ffn=auto:4.5,lm_head=6").unwrap();
        assert_eq!((c.ffn, c.lm_head, c.auto), (Some(AUTO_PLACEHOLDER_BITS), Some(6), [Some(450), None, None]));
        assert_eq!(c.to_string(), "ffn=auto:4.5,lm_head=6,embed=none");
        assert_eq!(LutConfig::parse(&c.to_string()).unwrap(), c);
        assert_eq!(LutConfig::parse("auto:3").unwrap().auto, [Some(300), Some(300), None]);
        assert!(LutConfig::parse("ffn=auto:9").unwrap_err().to_string().contains("between 1 and 8"));
        assert!(LutConfig::parse("ffn=auto:x").is_err());
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
