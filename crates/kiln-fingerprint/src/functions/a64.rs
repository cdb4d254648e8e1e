//! AArch64 normalisation, decoded with yaxpeax-arm.
//!
//! What moves between builds and link layouts is masked: PC-relative
//! offsets (branches, calls, `adr`/`adrp`, literal loads), large
//! immediates, and the low 12 address bits that follow an `adrp`
//! (`add x0, x0, #:lo12:sym`, `ldr x1, [x0, #:lo12:sym]`), which
//! relocations fill in. Opcodes, registers, conditions, shifts and small
//! immediates are kept.

use std::hash::{Hash, Hasher};

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction, Opcode, Operand};

use super::SMALL;

/// Collects the bytes `Hash` impls write, so enum discriminants (which
/// yaxpeax does not expose as numbers) join the normalised stream
/// deterministically.
struct Bytes<'a>(&'a mut Vec<u8>);

impl Hasher for Bytes<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn tag<T>(v: &T, out: &mut Vec<u8>) {
    std::mem::discriminant(v).hash(&mut Bytes(out));
}

fn small(v: u64) -> bool {
    v < SMALL
}

/// Stores name their source register first; everything else writes its
/// first register operand.
fn writes_first_operand(op: Opcode) -> bool {
    !matches!(
        op,
        Opcode::STR
            | Opcode::STRB
            | Opcode::STRH
            | Opcode::STP
            | Opcode::STNP
            | Opcode::STUR
            | Opcode::STURB
            | Opcode::STURH
            | Opcode::STLR
            | Opcode::STLRB
            | Opcode::STLRH
            | Opcode::STXR
            | Opcode::STLXR
            | Opcode::CBZ
            | Opcode::CBNZ
            | Opcode::TBZ
            | Opcode::TBNZ
            | Opcode::RET
            | Opcode::BR
            | Opcode::BLR
    )
}

/// Does the register set `pages` hold register `r`?
fn holds(pages: u32, r: u16) -> bool {
    r < 32 && pages & (1u32 << r) != 0
}

fn register(op: &Operand) -> Option<u16> {
    match op {
        Operand::Register(_, r) | Operand::RegisterOrSP(_, r) => Some(*r),
        _ => None,
    }
}

/// Append the normalised form of AArch64 `bytes` to `out`; returns the
/// instruction count.
pub(super) fn normalise(bytes: &[u8], out: &mut Vec<u8>) -> u32 {
    let decoder = InstDecoder::default();
    let mut ins = Instruction::default();
    // Registers holding an `adrp` page.
    let mut pages: u32 = 0;
    let mut n = 0;
    for word in bytes.chunks_exact(4) {
        n += 1;
        let mut reader = U8Reader::new(word);
        if decoder.decode_into(&mut ins, &mut reader).is_err() {
            // Data in code (literal pools, padding): its value, as is.
            out.push(0xff);
            out.extend_from_slice(word);
            continue;
        }
        tag(&ins.opcode, out);
        let page_source = ins.operands[1..].iter().any(|op| match op {
            Operand::RegPreIndex(r, _, _) | Operand::RegPostIndex(r, _) => holds(pages, *r),
            op => register(op).is_some_and(|r| holds(pages, r)),
        }) || matches!(ins.operands[0], Operand::RegPreIndex(r, _, _) if holds(pages, r));
        for op in &ins.operands {
            if matches!(op, Operand::Nothing) {
                break;
            }
            tag(op, out);
            match *op {
                Operand::Register(s, r)
                | Operand::RegisterOrSP(s, r)
                | Operand::RegisterPair(s, r) => {
                    tag(&s, out);
                    out.extend_from_slice(&r.to_le_bytes());
                }
                Operand::SIMDRegister(s, r) => {
                    tag(&s, out);
                    out.extend_from_slice(&r.to_le_bytes());
                }
                Operand::SIMDRegisterElements(a, r, b) => {
                    tag(&a, out);
                    tag(&b, out);
                    out.extend_from_slice(&r.to_le_bytes());
                }
                Operand::SIMDRegisterElementsLane(a, r, b, l) => {
                    tag(&a, out);
                    tag(&b, out);
                    out.extend_from_slice(&r.to_le_bytes());
                    out.push(l);
                }
                Operand::ConditionCode(c) => out.push(c),
                Operand::PCOffset(_) => {}
                Operand::Immediate(v) if !page_source && small(u64::from(v)) => {
                    out.extend_from_slice(&v.to_le_bytes())
                }
                Operand::Imm16(v) if small(u64::from(v)) => out.extend_from_slice(&v.to_le_bytes()),
                Operand::Imm64(v) if small(v) => out.extend_from_slice(&v.to_le_bytes()),
                Operand::ImmShift(v, s) if !page_source && small(u64::from(v)) => {
                    out.extend_from_slice(&v.to_le_bytes());
                    out.push(s);
                }
                Operand::RegShift(style, amount, s, r) => {
                    tag(&style, out);
                    tag(&s, out);
                    out.push(amount);
                    out.extend_from_slice(&r.to_le_bytes());
                }
                Operand::RegRegOffset(a, b, s, style, amount) => {
                    tag(&style, out);
                    tag(&s, out);
                    out.extend_from_slice(&a.to_le_bytes());
                    out.extend_from_slice(&b.to_le_bytes());
                    out.push(amount);
                }
                Operand::RegPreIndex(r, off, wb) => {
                    out.extend_from_slice(&r.to_le_bytes());
                    out.push(u8::from(wb));
                    if (wb || !holds(pages, r)) && small(off.unsigned_abs().into()) {
                        out.extend_from_slice(&off.to_le_bytes());
                    }
                }
                Operand::RegPostIndex(r, off) => {
                    out.extend_from_slice(&r.to_le_bytes());
                    out.extend_from_slice(&off.to_le_bytes());
                }
                Operand::RegPostIndexReg(a, b) => {
                    out.extend_from_slice(&a.to_le_bytes());
                    out.extend_from_slice(&b.to_le_bytes());
                }
                // System registers, barriers, prefetch ops, float
                // immediates and other operands: kind only.
                _ => {}
            }
        }
        // Track which registers hold a page address.
        if let Some(r) = register(&ins.operands[0]).filter(|r| *r < 32) {
            if ins.opcode == Opcode::ADRP {
                pages |= 1 << r;
            } else if writes_first_operand(ins.opcode) {
                pages &= !(1 << r);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(words: &[u32]) -> Vec<u8> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        assert_eq!(normalise(&bytes, &mut out), words.len() as u32);
        out
    }

    #[test]
    fn addresses_are_masked_and_registers_kept() {
        // adrp x0, page; add x0, x0, #0x120; bl target; ret
        let a = norm(&[0x90000000, 0x91048000, 0x94000010, 0xd65f03c0]);
        // the same with another page, low bits and call target
        let b = norm(&[0xb0000080, 0x91010000, 0x94000200, 0xd65f03c0]);
        assert_eq!(a, b);
        // add x1, x1, #0x120 (no adrp): a real constant, kept
        let c = norm(&[0x91048021]);
        let d = norm(&[0x91010021]);
        assert_ne!(c, d);
        // other registers differ
        let e = norm(&[0x90000001, 0x91048021, 0x94000010, 0xd65f03c0]);
        assert_ne!(a, e);
    }
}
