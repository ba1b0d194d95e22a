//! The summary table printed after emission: one row per package.

use super::emit::EmitReport;
use super::layout::PartKind;

/// `1.23 GiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.2} {}", UNITS[unit]) }
}

/// The table: part file, kind, layers, weights, weight.bin bytes, LUT bits.
pub fn summary_table(report: &EmitReport) -> String {
    let mut rows: Vec<[String; 6]> =
        vec![["package".into(), "part".into(), "layers".into(), "weights".into(), "bytes".into(), "lut".into()]];
    for (part, info) in report.layout.parts.iter().zip(&report.packages) {
        let kind = match part.kind {
            PartKind::Embeddings => "embeddings",
            PartKind::Ffn => "ffn+prefill",
            PartKind::LmHead => "lm_head",
        };
        let layers = part.layers.as_ref().map_or("-".to_string(), |r| format!("{}-{}", r.start, r.end - 1));
        rows.push([
            format!("{}.mlpackage", part.stem),
            kind.into(),
            layers,
            part.weights.to_string(),
            human_bytes(info.weight_bytes + info.model_bytes),
            part.lut.map_or("none".into(), |b| format!("{b}-bit")),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if (3..=4).contains(&c) { format!("{s:>w$}", w = widths[c]) } else { format!("{s:<w$}", w = widths[c]) }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    let total: u64 = report.packages.iter().map(|p| p.weight_bytes + p.model_bytes).sum();
    out.push_str(&format!("total {}\n", human_bytes(total)));
    out
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 << 30), "3.00 GiB");
    }
}
