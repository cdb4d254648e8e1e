//! Claiming a guest's MAC address for this host before the guest runs
//! here.
//!
//! While the source is paused at switchover, the switches between client
//! and guest still send the guest's frames to the source's tap, where
//! they are lost with the source. The client resends them only after
//! TCP's retransmission timeout, at least 200 ms on Linux, so every
//! request in flight at switchover would stall that long. QEMU announces
//! the guest only once it runs at the destination.
//!
//! A broadcast from the destination's bridge with the guest's MAC as its
//! source teaches every learning switch on the way that the address now
//! lives here. From then on the guest's frames wait in the destination's
//! tap, which QEMU reads as soon as the guest resumes. The frame is a
//! RARP request like QEMU's own announcement, which hosts ignore.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// RARP's EtherType.
const ETH_P_RARP: u16 = 0x8035;
/// The shortest Ethernet frame without its checksum.
const MIN_FRAME: usize = 60;

/// Send one announcement of `mac` ("52:54:…") out of `bridge`.
pub fn claim(bridge: &str, mac: &str) -> io::Result<()> {
    let mac = parse_mac(mac)?;
    let name = CString::new(bridge)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a bridge name with NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // Protocol 0: the socket only sends, it never receives.
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_RARP.to_be();
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].fill(0xff);
    let frame = rarp(mac);
    // SAFETY: the buffer and address outlive the call, and their lengths
    // are passed with them.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::addr_of!(to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A broadcast RARP "request reverse" for `mac`, padded to 60 bytes.
fn rarp(mac: [u8; 6]) -> [u8; MIN_FRAME] {
    let mut f = [0u8; MIN_FRAME];
    f[..6].fill(0xff);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_RARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&3u16.to_be_bytes()); // request reverse
    f[22..28].copy_from_slice(&mac);
    f[32..38].copy_from_slice(&mac);
    f
}

fn parse_mac(s: &str) -> io::Result<[u8; 6]> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a MAC address: {s}"),
        )
    };
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next().ok_or_else(bad)?;
        *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    match parts.next() {
        Some(_) => Err(bad()),
        None => Ok(mac),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_a_broadcast_rarp_from_the_guest() {
        let mac = parse_mac("52:54:00:ab:cd:ef").unwrap();
        let f = rarp(mac);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x80, 0x35]);
        assert_eq!(&f[20..22], &[0, 3]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[32..38], &mac);
    }

    /// A switch one hop away learns the MAC on the port facing the
    /// bridge that claimed it. Needs root (a network namespace of its own).
    #[test]
    fn a_switch_learns_the_claimed_mac_on_the_claimers_port() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root");
            eprintln!("skipping: a network namespace needs root");
            return;
        }
        // The namespace is the thread's own, and so its children's.
        let (fdb, own) = std::thread::spawn(|| {
            // SAFETY: unshare only affects this thread.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            for cmd in [
                "link add br0 type bridge",
                "link add sw type bridge",
                "link add v0 type veth peer name v1",
                "link set v0 master br0",
                "link set v1 master sw",
                "link set br0 up",
                "link set sw up",
                "link set v0 up",
                "link set v1 up",
            ] {
                let ok = std::process::Command::new("ip")
                    .args(cmd.split(' '))
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "ip {cmd}");
            }
            // Links come up asynchronously: a frame sent before both
            // bridge ports forward is dropped.
            let forwarding = || {
                let out = std::process::Command::new("bridge")
                    .args(["link", "show"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                out.matches("state forwarding").count() == 2
            };
            let start = std::time::Instant::now();
            while !forwarding() {
                assert!(
                    start.elapsed().as_secs() < 10,
                    "the bridge ports never forwarded"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            claim("br0", "52:54:00:ab:cd:ef").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let show = |br: &str| {
                let out = std::process::Command::new("bridge")
                    .args(["fdb", "show", "br", br])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            (show("sw"), show("br0"))
        })
        .join()
        .unwrap();
        assert!(
            fdb.lines()
                .any(|l| l.starts_with("52:54:00:ab:cd:ef dev v1")),
            "{fdb}"
        );
        // The claiming bridge itself must not learn it as local, or it
        // would keep the guest's frames from the guest's tap.
        assert!(!own.contains("52:54:00:ab:cd:ef"), "{own}");
        assert!(claim("no-such-bridge", "52:54:00:ab:cd:ef").is_err());
    }

    #[test]
    fn bad_macs_are_refused() {
        for s in ["", "52:54", "52:54:00:ab:cd:ef:01", "zz:54:00:ab:cd:ef"] {
            assert!(parse_mac(s).is_err(), "{s}");
        }
    }
}
