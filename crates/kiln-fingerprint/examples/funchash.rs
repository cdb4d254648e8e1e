//! Hash the functions of ELF files on one thread and report throughput:
//! `cargo run --release -p kiln-fingerprint --example funchash -- FILE...`
//! (used by bench/functions.sh). With `--sets`, print each file's number
//! of distinct function hashes and a digest of the set instead, to compare
//! two copies of a file by code.

use std::time::Instant;

use goblin::elf::Elf;
use kiln_fingerprint::functions::hash_functions;

fn main() {
    let mut bytes = 0u64;
    let mut functions = 0usize;
    let mut files = 0usize;
    let mut secs = 0f64;
    let sets = std::env::args().nth(1).as_deref() == Some("--sets");
    for path in std::env::args().skip(if sets { 2 } else { 1 }) {
        let Ok(data) = std::fs::read(&path) else {
            eprintln!("{path}: cannot read");
            continue;
        };
        if sets {
            let h = kiln_fingerprint::functions::file_function_hashes(&data);
            let digest = h.iter().fold(0u64, |a, x| a.rotate_left(5) ^ x);
            println!("{path}\t{}\t{digest:016x}", h.len());
            continue;
        }
        let Ok(elf) = Elf::parse(&data) else { continue };
        let t = Instant::now();
        let hashes = hash_functions(&data, &elf, kiln_fingerprint::functions::MIN_FUNCTION);
        secs += t.elapsed().as_secs_f64();
        bytes += hashes.iter().map(|f| u64::from(f.len)).sum::<u64>();
        functions += hashes.len();
        files += 1;
    }
    println!(
        "{{\"files\": {files}, \"functions\": {functions}, \"code_bytes\": {bytes}, \"seconds\": {secs:.4}, \"mb_per_s_per_core\": {:.1}}}",
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
}
