//! Hash the functions of ELF files on one thread and report throughput:
//! `cargo run --release -p kiln-fingerprint --example funchash -- FILE...`
//! (used by bench/functions.sh).

use std::time::Instant;

use goblin::elf::Elf;
use kiln_fingerprint::functions::hash_functions;

fn main() {
    let mut bytes = 0u64;
    let mut functions = 0usize;
    let mut files = 0usize;
    let mut secs = 0f64;
    for path in std::env::args().skip(1) {
        let Ok(data) = std::fs::read(&path) else {
            eprintln!("{path}: cannot read");
            continue;
        };
        let Ok(elf) = Elf::parse(&data) else { continue };
        let t = Instant::now();
        let hashes = hash_functions(&data, &elf, 16);
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
