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
    syscall_names(&out);
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=src/bpf/trace.h");
    println!("cargo:rerun-if-env-changed=KILN_BTF");
}

/// x86-64 system call names by number, from the kernel's UAPI header
/// (linux-libc-dev), for traceloop's decoder.
fn syscall_names(out: &std::path::Path) {
    let header = [
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "/usr/include/asm/unistd_64.h",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .expect("the x86-64 system call numbers (apt-get install linux-libc-dev)");
    let mut names: Vec<(i64, String)> = header
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("#define __NR_")?;
            let (name, nr) = rest.split_once(char::is_whitespace)?;
            Some((nr.trim().parse().ok()?, name.to_string()))
        })
        .collect();
    names.sort();
    let body: String = names
        .iter()
        .map(|(n, s)| format!("    ({n}, \"{s}\"),\n"))
        .collect();
    let code = format!("/// (number, name), sorted by number.\npub(crate) static SYSCALLS: &[(i64, &str)] = &[\n{body}];\n");
    std::fs::write(out.join("syscalls.rs"), code).expect("write syscalls.rs");
}
