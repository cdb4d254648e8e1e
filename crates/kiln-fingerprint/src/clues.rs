//! Version clues: the places inside an ELF file where an upstream version
//! can hide once every package database is gone.
//!
//! Two kinds are collected, both raw (what they mean is learned by the
//! rainbow table from real packages, not written down here):
//!
//! - printable strings that contain a dotted number (`OpenSSL 3.0.17 1 Jul
//!   2025`, `libpng version 1.6.39`, `keyutils-1.6.3`);
//! - constants that defined functions return or store: `WebPGetDecoderVersion`
//!   is `mov eax, 0x10204; ret`, `FT_New_Library` stores 2, 12, 1 into the
//!   new library object, `raqm_version_string` returns a pointer to
//!   `"0.9.0"`. A small straight-line evaluator over x86-64 code (iced-x86)
//!   follows immediates and constants loaded RIP-relative from `.rodata`.

use std::collections::HashMap;

use goblin::elf::header::EM_X86_64;
use goblin::elf::sym::{STT_FUNC, STT_OBJECT};
use goblin::elf::Elf;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use serde::{Deserialize, Serialize};

use crate::mapped::Image;

/// Longest string kept; longer runs are prose or tables, not versions.
const MAX_STRING: usize = 200;
/// Most strings kept per file.
const MAX_STRINGS: usize = 4096;
/// Largest function body evaluated.
const MAX_FUNCTION: usize = 64 << 10;
/// Most stores recorded per function.
const MAX_STORES: usize = 512;

/// A constant a function writes to memory: `mov dword [reg+disp], value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    /// Displacement from the base register (a struct field offset).
    pub disp: i64,
    /// The value written.
    pub value: u64,
    /// Bytes written (1, 2, 4 or 8).
    pub width: u8,
    /// When the base register still holds the function's pointer argument
    /// number N (System V: rdi, rsi, rdx, rcx, r8, r9): `Some(N)`. Version
    /// functions such as `zmq_version(int *major, int *minor, int *patch)`
    /// store through their arguments.
    #[serde(default)]
    pub arg: Option<u8>,
}

/// Registers a call may change (System V x86-64).
const CALLER_SAVED: [Register; 9] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// A variable that says it holds a version (`_libunistring_version`,
/// `xsltLibxsltVersion`): only those are read, not every global integer.
fn version_named(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("vers") || lower.contains("_ver")
}

/// A conditional move.
fn is_cmov(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmova
            | Mnemonic::Cmovae
            | Mnemonic::Cmovb
            | Mnemonic::Cmovbe
            | Mnemonic::Cmove
            | Mnemonic::Cmovg
            | Mnemonic::Cmovge
            | Mnemonic::Cmovl
            | Mnemonic::Cmovle
            | Mnemonic::Cmovne
            | Mnemonic::Cmovno
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovns
            | Mnemonic::Cmovo
            | Mnemonic::Cmovp
            | Mnemonic::Cmovs
    )
}

/// The System V x86-64 integer argument registers, in order.
const ARGS: [Register; 6] = [
    Register::RDI,
    Register::RSI,
    Register::RDX,
    Register::RCX,
    Register::R8,
    Register::R9,
];

/// Constants of one defined function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConsts {
    /// Symbol name.
    pub name: String,
    /// Integer constants the function returns.
    pub returns: Vec<u64>,
    /// C strings the function returns a pointer to.
    pub returns_str: Vec<String>,
    /// Constants stored through a register plus displacement.
    pub stores: Vec<Store>,
}

/// Version clues of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clues {
    /// Printable strings containing a dotted number, deduplicated, in file
    /// order.
    pub strings: Vec<String>,
    /// Constants of the defined functions that were asked for.
    pub functions: Vec<FunctionConsts>,
}

impl Clues {
    /// Collect the clues of a parsed ELF file. `want` selects which defined
    /// functions are evaluated (all of them while learning, only those the
    /// DB has templates for while scanning).
    pub fn extract(data: &[u8], elf: &Elf, want: &dyn Fn(&str) -> bool) -> Clues {
        let mut clues = Clues {
            strings: data_strings(data, elf),
            ..Default::default()
        };
        let mut seen: HashMap<&str, ()> = HashMap::new();
        let syms = elf
            .dynsyms
            .iter()
            .map(|s| (s, &elf.dynstrtab))
            .chain(elf.syms.iter().map(|s| (s, &elf.strtab)));
        let mut funcs = Vec::new();
        let mut objects = Vec::new();
        for (sym, strtab) in syms {
            if sym.st_shndx == 0 || sym.st_value == 0 {
                continue;
            }
            let is_object = sym.st_type() == STT_OBJECT
                && (sym.st_size == 4 || (2..=MAX_STRING as u64).contains(&sym.st_size))
                && strtab.get_at(sym.st_name).is_some_and(version_named);
            if sym.st_type() != STT_FUNC && !is_object {
                continue;
            }
            let Some(name) = strtab.get_at(sym.st_name) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            // Only wanted names are deduplicated: most symbols are not.
            if !name.is_empty() && want(name) && seen.insert(name, ()).is_none() {
                if is_object {
                    objects.push((name, sym.st_value, sym.st_size));
                } else {
                    funcs.push((name, sym.st_value, sym.st_size));
                }
            }
        }
        // Version variables (`_libunistring_version`, a `const char[]`):
        // read as a function returning their value would be.
        if !objects.is_empty() {
            let image = Image::new(data, elf);
            clues.functions.extend(
                objects
                    .into_iter()
                    .filter_map(|(n, a, z)| image.variable(n, a, z)),
            );
        }
        if elf.header.e_machine == EM_X86_64 && !funcs.is_empty() {
            let image = Image::new(data, elf);
            for (name, addr, size) in funcs {
                if let Some(f) = image.evaluate(name, addr, size) {
                    clues.functions.push(f);
                }
            }
        }
        clues
    }
}

/// Version strings of the data sections only (code holds none and is most
/// of the bytes); the whole file when section headers are gone.
fn data_strings(data: &[u8], elf: &Elf) -> Vec<String> {
    use goblin::elf::section_header::{SHF_EXECINSTR, SHT_PROGBITS};
    let ranges: Vec<&[u8]> = elf
        .section_headers
        .iter()
        .filter(|s| s.sh_type == SHT_PROGBITS && s.sh_flags & u64::from(SHF_EXECINSTR) == 0)
        .filter(|s| {
            !elf.shdr_strtab
                .get_at(s.sh_name)
                .is_some_and(|n| n.starts_with(".debug") || n.starts_with(".gnu_debug"))
        })
        .filter_map(|s| {
            let start = usize::try_from(s.sh_offset).ok()?;
            data.get(start..start.checked_add(usize::try_from(s.sh_size).ok()?)?)
        })
        .collect();
    if ranges.is_empty() {
        return version_strings(data);
    }
    strings_in(&ranges)
}

/// Printable ASCII runs (at least 4 bytes) that contain `digit.digit`.
pub fn version_strings(data: &[u8]) -> Vec<String> {
    strings_in(&[data])
}

/// The version strings of several byte ranges, deduplicated across them.
/// Only the bytes around each `.` are looked at (memchr finds them), so
/// the cost follows the dots, not the size of the file.
fn strings_in(ranges: &[&[u8]]) -> Vec<String> {
    let printable = |b: u8| b == b'\t' || (0x20..0x7f).contains(&b);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for data in ranges {
        let mut run_end = 0;
        for dot in memchr::memchr_iter(b'.', data) {
            if dot < run_end || dot == 0 || dot + 1 >= data.len() {
                continue;
            }
            if !(data[dot - 1].is_ascii_digit() && data[dot + 1].is_ascii_digit()) {
                continue;
            }
            let mut start = dot;
            while start > 0 && printable(data[start - 1]) {
                start -= 1;
            }
            let mut end = dot + 1;
            while end < data.len() && printable(data[end]) {
                end += 1;
            }
            run_end = end;
            let run = &data[start..end];
            if run.len() < 4 || run.len() > MAX_STRING {
                continue;
            }
            let text = String::from_utf8_lossy(run).trim().to_string();
            if seen.insert(text.clone()) {
                out.push(text);
                if out.len() >= MAX_STRINGS {
                    return out;
                }
            }
        }
    }
    out
}

impl Image<'_> {
    /// A data object's value: a 4-byte integer, or a NUL-terminated
    /// printable string filling its array.
    fn variable(&self, name: &str, addr: u64, size: u64) -> Option<FunctionConsts> {
        let mut f = FunctionConsts {
            name: name.to_string(),
            ..Default::default()
        };
        if size == 4 {
            f.returns.push(self.u64_at(addr, 4)?);
        } else {
            let s = self.c_string(addr)?;
            (s.len() + 1 == size as usize).then_some(())?;
            f.returns_str.push(s);
        }
        Some(f)
    }

    fn c_string(&self, addr: u64) -> Option<String> {
        let b = self.bytes(addr, MAX_STRING as u64 + 1)?;
        let end = b.iter().position(|c| *c == 0)?;
        let s = &b[..end];
        (!s.is_empty() && s.iter().all(|c| (0x20..0x7f).contains(c)))
            .then(|| String::from_utf8_lossy(s).into_owned())
    }

    /// Straight-line evaluation: track registers that hold known constants
    /// or addresses, record constant stores and returns. Branches are not
    /// followed; knowledge is dropped at calls.
    fn evaluate(&self, name: &str, addr: u64, size: u64) -> Option<FunctionConsts> {
        let size = if size == 0 { 64 } else { size };
        let code = self.bytes(addr, size.min(MAX_FUNCTION as u64))?;
        let mut f = FunctionConsts {
            name: name.to_string(),
            ..Default::default()
        };
        let mut consts: HashMap<Register, u64> = HashMap::new();
        let mut addrs: HashMap<Register, u64> = HashMap::new();
        // Which pointer argument each register (and, in -O0 code, each
        // stack slot it was spilled to) still holds.
        let mut args = Args::new();
        let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
        let mut ins = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut ins);
            if ins.is_invalid() {
                break;
            }
            let stores = f.stores.len();
            self.step(&ins, &mut consts, &mut addrs, &mut f);
            if f.stores.len() > stores {
                if let Some(last) = f.stores.last_mut() {
                    last.arg = args.base_of(&ins);
                }
            }
            args.step(&ins);
            if f.stores.len() >= MAX_STORES {
                break;
            }
        }
        // Several return paths often return the same thing.
        f.returns.dedup();
        f.returns_str.dedup();
        (!f.returns.is_empty() || !f.returns_str.is_empty() || !f.stores.is_empty()).then_some(f)
    }

    fn step(
        &self,
        ins: &Instruction,
        consts: &mut HashMap<Register, u64>,
        addrs: &mut HashMap<Register, u64>,
        f: &mut FunctionConsts,
    ) {
        let reg0 = (ins.op_count() > 0 && ins.op0_kind() == OpKind::Register)
            .then(|| ins.op0_register().full_register());
        match ins.mnemonic() {
            Mnemonic::Ret => {
                if let Some(v) = consts.get(&Register::RAX) {
                    f.returns.push(*v);
                } else if let Some(a) = addrs.get(&Register::RAX) {
                    if let Some(s) = self.c_string(*a) {
                        f.returns_str.push(s);
                    } else {
                        // A pointer to a constant struct (`nghttp2_version`
                        // returns `{age, version_num, version_str, …}`):
                        // its leading integer fields.
                        f.returns
                            .extend((0..4).filter_map(|k| self.u64_at(a + 4 * k, 4)));
                    }
                }
                return;
            }
            Mnemonic::Call => {
                // The callee may change the caller-saved registers; rbx,
                // rbp and r12-r15 keep what they held (a version string's
                // address loaded before `strverscmp`).
                for r in CALLER_SAVED {
                    consts.remove(&r);
                    addrs.remove(&r);
                }
                return;
            }
            m if is_cmov(m) && reg0.is_some() && ins.op1_kind() == OpKind::Register => {
                // Either value may be the result: keep the one known (every
                // possible return is collected, so one path suffices).
                let (dst, src) = (reg0.unwrap_or_default(), ins.op1_register().full_register());
                if !consts.contains_key(&dst) && !addrs.contains_key(&dst) {
                    if let Some(v) = consts.get(&src).copied() {
                        consts.insert(dst, v);
                    } else if let Some(a) = addrs.get(&src).copied() {
                        addrs.insert(dst, a);
                    }
                }
                return;
            }
            Mnemonic::Mov if ins.op_count() == 2 => {
                let src = match ins.op1_kind() {
                    OpKind::Immediate8
                    | OpKind::Immediate16
                    | OpKind::Immediate32
                    | OpKind::Immediate64
                    | OpKind::Immediate8to32
                    | OpKind::Immediate8to64
                    | OpKind::Immediate32to64 => Some(ins.immediate(1)),
                    OpKind::Register => consts.get(&ins.op1_register().full_register()).copied(),
                    OpKind::Memory if ins.is_ip_rel_memory_operand() => {
                        let width = ins.memory_size().size();
                        (width <= 8)
                            .then(|| self.u64_at(ins.ip_rel_memory_address(), width))
                            .flatten()
                    }
                    _ => None,
                };
                match ins.op0_kind() {
                    OpKind::Register => {
                        let r = ins.op0_register();
                        let full = r.full_register();
                        addrs.remove(&full);
                        match src {
                            Some(v) => {
                                let v = if r.size() == 4 { v & 0xffff_ffff } else { v };
                                consts.insert(full, v);
                            }
                            None => {
                                consts.remove(&full);
                            }
                        }
                        return;
                    }
                    OpKind::Memory if !ins.is_ip_rel_memory_operand() => {
                        if let Some(v) = src {
                            let width = ins.memory_size().size() as u8;
                            f.stores.push(Store {
                                disp: ins.memory_displacement64() as i64,
                                value: v,
                                width,
                                arg: None,
                            });
                        }
                        return;
                    }
                    _ => return,
                }
            }
            Mnemonic::Lea if ins.is_ip_rel_memory_operand() => {
                if let Some(r) = reg0 {
                    consts.remove(&r);
                    addrs.insert(r, ins.ip_rel_memory_address());
                }
                return;
            }
            Mnemonic::Xor
                if ins.op_count() == 2
                    && ins.op0_kind() == OpKind::Register
                    && ins.op1_kind() == OpKind::Register
                    && ins.op0_register() == ins.op1_register() =>
            {
                if let Some(r) = reg0 {
                    addrs.remove(&r);
                    consts.insert(r, 0);
                }
                return;
            }
            _ => {}
        }
        // Anything else that writes a register makes it unknown.
        if let Some(r) = reg0 {
            consts.remove(&r);
            addrs.remove(&r);
        }
    }
}

/// Where a function's pointer arguments are: registers holding them, and
/// stack slots (off rbp or rsp) they were spilled to, as unoptimised code
/// does before storing through them.
struct Args {
    regs: HashMap<Register, u8>,
    slots: HashMap<(Register, i64), u8>,
}

impl Args {
    fn new() -> Self {
        Args {
            regs: ARGS
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((*r, u8::try_from(i).ok()?)))
                .collect(),
            slots: HashMap::new(),
        }
    }

    /// The argument a store writes through: its base register holds one,
    /// with no index register.
    fn base_of(&self, ins: &Instruction) -> Option<u8> {
        if ins.memory_index() != Register::None {
            return None;
        }
        self.regs.get(&ins.memory_base()).copied()
    }

    /// Follow copies of arguments through registers and stack slots.
    fn step(&mut self, ins: &Instruction) {
        if ins.mnemonic() == Mnemonic::Call {
            self.regs.clear();
            return;
        }
        let stack = |ins: &Instruction| {
            let b = ins.memory_base();
            (matches!(b, Register::RBP | Register::RSP) && ins.memory_index() == Register::None)
                .then(|| (b, ins.memory_displacement64() as i64))
        };
        if ins.mnemonic() == Mnemonic::Mov && ins.op_count() == 2 {
            match (ins.op0_kind(), ins.op1_kind()) {
                (OpKind::Register, OpKind::Register) => {
                    let dst = ins.op0_register().full_register();
                    match self.regs.get(&ins.op1_register().full_register()).copied() {
                        Some(a) if ins.op0_register().size() == 8 => {
                            self.regs.insert(dst, a);
                        }
                        _ => {
                            self.regs.remove(&dst);
                        }
                    }
                    return;
                }
                (OpKind::Memory, OpKind::Register) => {
                    if let (Some(slot), Some(a)) = (
                        stack(ins),
                        self.regs.get(&ins.op1_register().full_register()),
                    ) {
                        self.slots.insert(slot, *a);
                    }
                    return;
                }
                (OpKind::Register, OpKind::Memory) => {
                    let dst = ins.op0_register().full_register();
                    match stack(ins).and_then(|s| self.slots.get(&s)).copied() {
                        Some(a) if ins.op0_register().size() == 8 => {
                            self.regs.insert(dst, a);
                        }
                        _ => {
                            self.regs.remove(&dst);
                        }
                    }
                    return;
                }
                _ => {}
            }
        }
        if ins.op_count() > 0 && ins.op0_kind() == OpKind::Register {
            self.regs.remove(&ins.op0_register().full_register());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_dotted_strings_only() {
        let data = b"\0\0OpenSSL 3.0.17 1 Jul 2025\0abc\0GLIBC\0x1.2\0\x01keyutils-1.6.3\0";
        assert_eq!(
            version_strings(data),
            vec!["OpenSSL 3.0.17 1 Jul 2025", "x1.2", "keyutils-1.6.3"]
        );
    }

    /// A real library built by gcc: its version function's constant and
    /// returned string are recovered from optimised code.
    #[test]
    fn evaluates_real_version_functions() {
        if std::process::Command::new("gcc")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipping: gcc is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("v.c");
        std::fs::write(
            &src,
            r#"
struct lib { void *mem; int major, minor, patch; };
const int demo_version_number = 0x010402;
struct info { int age; int num; const char *text; };
static const struct info demo_info = { 1, 0x010402, "1.4.2" };
const struct info *demo_info_get(void) { return &demo_info; }
const char demo_version_text[] = "1.4.2";
int demo_version(void) { return (1 << 16) | (4 << 8) | 2; }
const char *demo_version_string(void) { return "1.4.2"; }
void demo_init(struct lib *l) { l->major = 1; l->minor = 4; l->patch = 2; }
void demo_get_version(int *a, int *b, int *c) { *a = 1; *b = 4; *c = 2; }
int strverscmp(const char *, const char *);
const char *demo_check_version(const char *req) {
    const char *v = "1.4.2";
    if (req && strverscmp(req, v) > 0) return 0;
    return v;
}
__attribute__((optimize("O0")))
void demo_get_version_o0(int *a, int *b, int *c) { *a = 1; *b = 4; *c = 2; }
"#,
        )
        .unwrap();
        let so = dir.path().join("libdemo.so");
        let ok = std::process::Command::new("gcc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let data = std::fs::read(&so).unwrap();
        let elf = Elf::parse(&data).unwrap();
        let clues = Clues::extract(&data, &elf, &|n| n.starts_with("demo_"));
        let get = |n: &str| clues.functions.iter().find(|f| f.name == n).unwrap();
        assert_eq!(get("demo_version").returns, vec![0x10402]);
        assert_eq!(get("demo_version_string").returns_str, vec!["1.4.2"]);
        // A pointer to a constant struct: its integer fields.
        assert!(
            get("demo_info_get").returns.contains(&0x10402),
            "{:?}",
            get("demo_info_get")
        );
        // Version variables read like functions returning them.
        assert_eq!(get("demo_version_number").returns, vec![0x10402]);
        assert_eq!(get("demo_version_text").returns_str, vec!["1.4.2"]);
        // Kept in a callee-saved register across a call, then a cmov.
        assert_eq!(get("demo_check_version").returns_str, vec!["1.4.2"]);
        let stores = &get("demo_init").stores;
        // gcc may merge two 4-byte stores into one 8-byte store.
        let mut words: Vec<(i64, u64)> = Vec::new();
        for s in stores {
            if s.width == 8 {
                words.push((s.disp, s.value & 0xffff_ffff));
                words.push((s.disp + 4, s.value >> 32));
            } else {
                words.push((s.disp, s.value));
            }
        }
        words.sort();
        assert_eq!(words, vec![(8, 1), (12, 4), (16, 2)], "{stores:?}");
        assert!(stores.iter().all(|s| s.arg == Some(0)), "{stores:?}");
        let mut through: Vec<(Option<u8>, u64)> = get("demo_get_version")
            .stores
            .iter()
            .map(|s| (s.arg, s.value))
            .collect();
        through.sort();
        assert_eq!(through, vec![(Some(0), 1), (Some(1), 4), (Some(2), 2)]);
        // Unoptimised code spills the arguments and reloads them.
        let mut o0: Vec<(Option<u8>, u64)> = get("demo_get_version_o0")
            .stores
            .iter()
            .filter(|s| s.disp == 0)
            .map(|s| (s.arg, s.value))
            .collect();
        o0.sort();
        assert_eq!(o0, vec![(Some(0), 1), (Some(1), 4), (Some(2), 2)]);
        assert!(clues.strings.iter().any(|s| s == "1.4.2"));
    }
}
