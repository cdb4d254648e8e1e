//! Compile the BPF programs into a libbpf-rs skeleton. The BTF types come
//! from this machine's kernel (`bpftool btf dump`), and CO-RE relocations
//! make the object load on other kernels with BTF.

use std::path::PathBuf;
use std::process::Command;

const SRC: &str = "src/bpf/trace.bpf.c";

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let btf = std::env::var("KILN_BTF").unwrap_or_else(|_| "/sys/kernel/btf/vmlinux".into());
    let vmlinux = Command::new("bpftool")
        .args(["btf", "dump", "file", &btf, "format", "c"])
        .output()
        .unwrap_or_else(|e| {
            panic!("kiln-trace needs bpftool to read {btf} (apt-get install bpftool): {e}")
        });
    assert!(
        vmlinux.status.success(),
        "bpftool btf dump file {btf}: {}",
        String::from_utf8_lossy(&vmlinux.stderr)
    );
    std::fs::write(out.join("vmlinux.h"), &vmlinux.stdout).expect("write vmlinux.h");
    libbpf_cargo::SkeletonBuilder::new()
        .source(SRC)
        .clang_args([format!("-I{}", out.display()), "-Isrc/bpf".to_string()])
        .build_and_generate(out.join("trace.skel.rs"))
        .expect("compile the BPF programs (clang and libbpf-dev)");
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=src/bpf/trace.h");
    println!("cargo:rerun-if-env-changed=KILN_BTF");
}
