//! Issue #13: candle-core's `quantized::gguf_file` against anemllc's own GGUF reader.
//!
//! Usage: `gguf-candle FILE anemllc|anemllc-rows|candle|compare`
//!
//! `anemllc` / `candle` (run each in its own process, so peak RSS is that reader's alone):
//! (a) open the file and parse metadata + tensor infos, (b) dequantise every tensor to f32,
//! one tensor at a time (each tensor's f32 buffer is dropped before the next), on one
//! thread. Prints wall time of each phase and the process's peak RSS (VmHWM) after each.
//! `anemllc-rows`: the same, decoding blocks of rows (≤ 1 M values) into one reused buffer
//! straight from the map, as anemllc's checkpoint path does.
//!
//! `compare`: dequantises every tensor with both readers and compares the f32 bits; prints
//! per quant type the tensors that are bit-identical and the largest |difference|.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use anemllc::gguf::{GgufFile, dequant::dequantize_into};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Storage};

/// Peak resident set size of this process so far, in MB (VmHWM of /proc/self/status).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A cheap checksum of the values (the wrapping sum of their bits, so blocks of a tensor
/// add up to the whole tensor's): the work cannot be optimised away, and every mode prints
/// the same sum for the same values.
fn fold(v: &[f32]) -> u32 {
    v.iter().fold(0u32, |a, x| a.wrapping_add(x.to_bits()))
}

fn ours(path: &Path) {
    let t0 = Instant::now();
    let file = GgufFile::open(path).expect("anemllc: open");
    let open = t0.elapsed();
    let rss_open = peak_rss_mb();
    let t1 = Instant::now();
    let (mut check, mut values) = (0u32, 0usize);
    for t in file.tensors() {
        let n: usize = t.dims.iter().product();
        let mut out = vec![0f32; n];
        dequantize_into(t.ty, file.data(t), &mut out);
        check = check.wrapping_add(fold(&out));
        values += n;
        // What the checkpoint path does after reading a tensor (see GgufFile::release).
        file.release(t);
    }
    let deq = t1.elapsed();
    report("anemllc", file.tensors().len(), values, open, rss_open, deq, check);
}

/// As [`ours`], but each tensor is decoded in blocks of whole rows of at most `BLOCK`
/// values into one reused buffer, straight from the map — what the checkpoint path does
/// (it never holds a whole large tensor in f32); candle's API has no per-row read.
fn ours_rows(path: &Path) {
    const BLOCK: usize = 1 << 20;
    let t0 = Instant::now();
    let file = GgufFile::open(path).expect("anemllc: open");
    let open = t0.elapsed();
    let rss_open = peak_rss_mb();
    let t1 = Instant::now();
    let (mut check, mut values) = (0u32, 0usize);
    let mut buf = vec![0f32; BLOCK];
    for t in file.tensors() {
        let n: usize = t.dims.iter().product();
        let row = t.row_len();
        let row_bytes = t.ty.row_bytes(row).expect("whole blocks per row");
        let per = (BLOCK / row).max(1);
        let data = file.data(t);
        debug_assert_eq!(data.len(), n / row * row_bytes);
        for bytes in data.chunks(per * row_bytes) {
            let rows = bytes.len() / row_bytes;
            if rows * row > buf.len() {
                buf.resize(rows * row, 0.0);
            }
            let out = &mut buf[..rows * row];
            dequantize_into(t.ty, bytes, out);
            check = check.wrapping_add(fold(out));
            values += out.len();
        }
        file.release(t);
    }
    let deq = t1.elapsed();
    report("anemllc-rows", file.tensors().len(), values, open, rss_open, deq, check);
}

fn candle(path: &Path) {
    let t0 = Instant::now();
    let mut reader = BufReader::new(File::open(path).expect("candle: open"));
    let content = gguf_file::Content::read(&mut reader).expect("candle: parse");
    let open = t0.elapsed();
    let rss_open = peak_rss_mb();
    // Candle keeps tensor infos in a HashMap; visit them in file order as anemllc does.
    let mut names: Vec<(&String, u64)> = content.tensor_infos.iter().map(|(k, v)| (k, v.offset)).collect();
    names.sort_by_key(|&(_, off)| off);
    let t1 = Instant::now();
    let (mut check, mut values) = (0u32, 0usize);
    for (name, _) in &names {
        let q = content.tensor(&mut reader, name, &Device::Cpu).expect("candle: read tensor");
        let t = q.dequantize(&Device::Cpu).expect("candle: dequantize");
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else { unreachable!("cpu device") };
        let all = cpu.as_slice::<f32>().expect("f32 storage");
        let v = &all[layout.start_offset()..layout.start_offset() + layout.shape().elem_count()];
        check = check.wrapping_add(fold(v));
        values += v.len();
    }
    let deq = t1.elapsed();
    report("candle", names.len(), values, open, rss_open, deq, check);
}

fn report(
    who: &str,
    tensors: usize,
    values: usize,
    open: std::time::Duration,
    rss_open: f64,
    deq: std::time::Duration,
    check: u32,
) {
    println!(
        "{who:<12} open+parse {:8.2} ms (peak RSS {:6.1} MB) | dequantise {tensors} tensors, {:.1} M values: {:8.1} ms, {:6.1} M values/s (peak RSS {:6.1} MB) | checksum {check:08x}",
        open.as_secs_f64() * 1e3,
        rss_open,
        values as f64 / 1e6,
        deq.as_secs_f64() * 1e3,
        values as f64 / 1e6 / deq.as_secs_f64(),
        peak_rss_mb(),
    );
}

fn compare(path: &Path) {
    let file = GgufFile::open(path).expect("anemllc: open");
    let mut reader = BufReader::new(File::open(path).expect("candle: open"));
    let content = gguf_file::Content::read(&mut reader).expect("candle: parse");
    assert_eq!(content.tensor_infos.len(), file.tensors().len(), "tensor counts differ");
    // type → (tensors, bit-identical tensors, differing values, max |diff|, max |diff| / max |value|)
    let mut by_type: BTreeMap<&str, (usize, usize, usize, f32, f64)> = BTreeMap::new();
    let mut first_bad: Vec<String> = Vec::new();
    for t in file.tensors() {
        let n: usize = t.dims.iter().product();
        let mut a = vec![0f32; n];
        dequantize_into(t.ty, file.data(t), &mut a);
        let info = &content.tensor_infos[&t.name];
        assert_eq!(info.shape.dims(), t.shape().as_slice(), "{}: shapes differ", t.name);
        let q = content.tensor(&mut reader, &t.name, &Device::Cpu).expect("candle: read tensor");
        let b: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len(), "{}: element counts differ", t.name);
        let mut differing = 0usize;
        let mut max_diff = 0f32;
        let mut max_abs = 0f32;
        for (x, y) in a.iter().zip(&b) {
            max_abs = max_abs.max(x.abs());
            if x.to_bits() != y.to_bits() {
                differing += 1;
                max_diff = max_diff.max((x - y).abs());
            }
        }
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        if differing == 0 {
            e.1 += 1;
        } else if first_bad.len() < 5 {
            first_bad.push(format!(
                "{} ({}): {differing} of {n} values differ, max |Δ| {max_diff:e}",
                t.name,
                t.ty.name()
            ));
        }
        e.2 += differing;
        e.3 = e.3.max(max_diff);
        if max_abs > 0.0 {
            e.4 = e.4.max(f64::from(max_diff) / f64::from(max_abs));
        }
    }
    for (ty, (n, same, differing, max_diff, rel)) in &by_type {
        println!(
            "compare  {ty:<5} {n:4} tensors, {same:4} bit-identical, {differing} values differ, max |Δ| {max_diff:e} (max |Δ| / max |value| {rel:.2e})"
        );
    }
    for line in first_bad {
        println!("  e.g. {line}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, mode] = args.as_slice() else {
        eprintln!("usage: gguf-candle FILE anemllc|anemllc-rows|candle|compare");
        std::process::exit(2);
    };
    let path = Path::new(file);
    match mode.as_str() {
        "anemllc" => ours(path),
        "anemllc-rows" => ours_rows(path),
        "candle" => candle(path),
        "compare" => compare(path),
        other => {
            eprintln!("unknown mode {other} (anemllc | anemllc-rows | candle | compare)");
            std::process::exit(2);
        }
    }
}
