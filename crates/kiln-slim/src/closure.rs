//! Static analysis: what an entrypoint needs, read from the image alone.
//!
//! - executables found through the image's `PATH`;
//! - the ELF closure: `PT_INTERP`, `DT_NEEDED` searched as ld.so does
//!   (`DT_RPATH` without `DT_RUNPATH`, `LD_LIBRARY_PATH`, `DT_RUNPATH`, the
//!   image's own `ld.so.conf` and `ld.so.conf.d`, then `/lib` and
//!   `/usr/lib`), `$ORIGIN` expanded;
//! - every symlink crossed on the way;
//! - `#!` interpreters (`/usr/bin/env NAME` through `PATH`);
//! - the heuristics SlimToolkit learned the hard way: CA certificates,
//!   the configured time zone, `nsswitch.conf` with its NSS modules,
//!   `passwd`/`group`/`hosts`, `os-release`, the C.UTF-8 locale and gconv
//!   configuration, and the standard library and site-packages of a Python
//!   interpreter.

use std::collections::{BTreeSet, VecDeque};

use goblin::elf::Elf;

use kiln_runtime::rootfs::Root;

/// Largest file parsed as ELF.
const MAX_ELF: u64 = 1 << 30;

/// The static closure being built.
pub struct Closure<'a> {
    root: Root<'a>,
    path_env: Vec<String>,
    ld_library_path: Vec<String>,
    ld_conf: Vec<String>,
    /// In-image paths (no leading `/`) to keep.
    pub keep: BTreeSet<String>,
    queue: VecDeque<String>,
    /// Executables named by the entrypoint or probes that do not exist.
    pub missing: Vec<String>,
}

impl<'a> Closure<'a> {
    /// Start a closure over the root at `dir`, with the image's environment.
    pub fn new(root: Root<'a>, env: &[String]) -> Closure<'a> {
        let var = |k: &str| {
            env.iter()
                .find_map(|e| e.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(|v| {
                    v.split(':')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
        };
        let path_env = var("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                .split(':')
                .map(str::to_string)
                .collect()
        });
        let mut c = Closure {
            ld_conf: Vec::new(),
            root,
            path_env,
            ld_library_path: var("LD_LIBRARY_PATH").unwrap_or_default(),
            keep: BTreeSet::new(),
            queue: VecDeque::new(),
            missing: Vec::new(),
        };
        c.ld_conf = c.read_ld_conf("etc/ld.so.conf", 0);
        c
    }

    /// The host root.
    pub fn root(&self) -> &Root<'a> {
        &self.root
    }

    /// Find a command as `execvp` would: a path, or a name on `PATH`.
    pub fn which(&self, cmd: &str, cwd: &str) -> Option<String> {
        if cmd.contains('/') {
            let p = if cmd.starts_with('/') {
                cmd.to_string()
            } else {
                format!("{cwd}/{cmd}")
            };
            return self.root.resolve(&p).map(|(p, _)| p);
        }
        self.path_env.iter().find_map(|d| {
            let (p, _) = self.root.resolve(&format!("{d}/{cmd}"))?;
            std::fs::metadata(self.root.host(&p))
                .ok()
                .filter(|m| m.is_file())
                .map(|_| p)
        })
    }

    /// Keep `path` (absolute or relative to `cwd`) and what it needs.
    pub fn add_path(&mut self, path: &str) -> bool {
        let Some((p, links)) = self.root.resolve(path) else {
            return false;
        };
        self.keep.extend(links.iter().cloned());
        // A link crossed on the way may itself point through other links.
        if self.keep.insert(p.clone()) {
            self.queue.push_back(p);
        }
        true
    }

    /// Keep a command named by the entrypoint, cmd or a probe.
    pub fn add_command(&mut self, cmd: &str, cwd: &str) {
        let found = if cmd.contains('/') {
            let p = if cmd.starts_with('/') {
                cmd.to_string()
            } else {
                format!("{cwd}/{cmd}")
            };
            self.add_path(&p)
        } else {
            // Keep the PATH entries' links too (`/bin` → `usr/bin`).
            let hit = self.path_env.iter().find(|d| {
                self.root
                    .resolve(&format!("{d}/{cmd}"))
                    .is_some_and(|(p, _)| {
                        std::fs::metadata(self.root.host(&p)).is_ok_and(|m| m.is_file())
                    })
            });
            match hit.cloned() {
                Some(d) => self.add_path(&format!("{d}/{cmd}")),
                None => false,
            }
        };
        if !found {
            self.missing.push(cmd.to_string());
        }
    }

    /// Keep everything below `dir` (and follow what it needs).
    pub fn add_tree(&mut self, dir: &str) {
        let Some((p, links)) = self.root.resolve(dir) else {
            return;
        };
        self.keep.extend(links);
        for q in self.root.walk(&p) {
            if self.keep.insert(q.clone()) {
                self.queue.push_back(q);
            }
        }
    }

    /// Follow ELF dependencies and interpreters until nothing is new.
    pub fn run(&mut self) {
        while let Some(p) = self.queue.pop_front() {
            let host = self.root.host(&p);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_ELF || meta.len() < 4 {
                continue;
            }
            let Ok(data) = std::fs::read(&host) else {
                continue;
            };
            if data.starts_with(b"#!") {
                self.script(&data, &p);
            } else if data.starts_with(b"\x7fELF") {
                self.elf(&data, &p);
            }
        }
    }

    fn script(&mut self, data: &[u8], path: &str) {
        let line = data[2..].split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let Some(interp) = words.next() else { return };
        let dir = parent(path);
        self.add_command(interp, &dir);
        if interp.ends_with("/env") {
            if let Some(prog) = words.find(|w| !w.starts_with('-')) {
                self.add_command(prog, &dir);
                self.interpreter_heuristics(prog);
            }
        } else {
            self.interpreter_heuristics(interp);
        }
    }

    fn elf(&mut self, data: &[u8], path: &str) {
        let Ok(elf) = Elf::parse(data) else { return };
        if let Some(interp) = elf.interpreter {
            self.add_path(interp);
        }
        let origin = format!("/{}", parent(path));
        let expand = |s: &str| -> Vec<String> {
            s.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| d.replace("$ORIGIN", &origin).replace("${ORIGIN}", &origin))
                .collect()
        };
        let rpath: Vec<String> = elf.rpaths.iter().flat_map(|s| expand(s)).collect();
        let runpath: Vec<String> = elf.runpaths.iter().flat_map(|s| expand(s)).collect();
        let mut dirs: Vec<String> = Vec::new();
        if runpath.is_empty() {
            dirs.extend(rpath);
        }
        dirs.extend(self.ld_library_path.iter().cloned());
        dirs.extend(runpath);
        dirs.extend(self.ld_conf.iter().cloned());
        // glibc's built-in directories; Debian's also has the multiarch ones.
        let triplet = match elf.header.e_machine {
            goblin::elf::header::EM_AARCH64 => "aarch64-linux-gnu",
            _ => "x86_64-linux-gnu",
        };
        dirs.extend([
            format!("/lib/{triplet}"),
            format!("/usr/lib/{triplet}"),
            "/lib".into(),
            "/usr/lib".into(),
            "/lib64".into(),
            "/usr/lib64".into(),
        ]);
        for lib in &elf.libraries {
            if lib.contains('/') {
                self.add_path(lib);
                continue;
            }
            for d in &dirs {
                let candidate = format!("{d}/{lib}");
                if self.root.resolve(&candidate).is_some_and(|(p, _)| {
                    std::fs::metadata(self.root.host(&p)).is_ok_and(|m| m.is_file())
                }) {
                    self.add_path(&candidate);
                    break;
                }
            }
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        self.interpreter_heuristics(name);
    }

    /// An interpreter needs its library: Python its standard library and
    /// site-packages.
    fn interpreter_heuristics(&mut self, prog: &str) {
        let name = prog.rsplit('/').next().unwrap_or(prog);
        let Some(ver) = name.strip_prefix("python") else {
            return;
        };
        let ver = ver.trim_end_matches(|c: char| !c.is_ascii_digit() && c != '.');
        let versions: Vec<String> = if ver.contains('.') {
            vec![ver.to_string()]
        } else {
            // `python3`: whichever python3.N the image has.
            let lib = self.root.host("usr/lib");
            std::fs::read_dir(lib)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.strip_prefix("python")
                                .filter(|v| v.starts_with(ver) && v.contains('.'))
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for v in versions {
            let marker = format!("usr/lib/python{v}");
            if self.keep.contains(&marker) {
                continue;
            }
            for d in [
                format!("/usr/lib/python{v}"),
                format!("/usr/local/lib/python{v}"),
                "/usr/lib/python3/dist-packages".to_string(),
            ] {
                self.add_tree(&d);
            }
            self.keep.insert(marker);
        }
    }

    /// Files every Linux program may read at run time.
    pub fn add_system_heuristics(&mut self) {
        for p in [
            "/etc/passwd",
            "/etc/group",
            "/etc/hosts",
            "/etc/host.conf",
            "/etc/resolv.conf",
            "/etc/gai.conf",
            "/etc/services",
            "/etc/protocols",
            "/etc/nsswitch.conf",
            "/etc/os-release",
            "/etc/localtime",
            "/etc/timezone",
            "/usr/share/zoneinfo/UTC",
            "/usr/share/zoneinfo/Etc/UTC",
            "/etc/ssl/openssl.cnf",
            "/etc/ca-certificates.conf",
            "/etc/ld.so.conf",
            "/etc/ld.so.cache",
            "/usr/lib/locale/C.utf8",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.d",
        ] {
            if self.root.resolve(p).is_some_and(|(r, _)| {
                std::fs::symlink_metadata(self.root.host(&r)).is_ok_and(|m| m.is_dir())
            }) {
                self.add_tree(p);
            } else {
                self.add_path(p);
            }
        }
        for d in [
            "/etc/ld.so.conf.d",
            "/etc/ssl/certs",
            "/usr/share/ca-certificates",
        ] {
            self.add_tree(d);
        }
        // OpenSSL's directory: its configuration and certificate links,
        // not the helper scripts in misc/ (which would pull in perl).
        for p in [
            "/usr/lib/ssl/openssl.cnf",
            "/usr/lib/ssl/certs",
            "/usr/lib/ssl/private",
        ] {
            self.add_path(p);
        }
        self.nss_modules();
    }

    fn nss_modules(&mut self) {
        let Ok(conf) = std::fs::read_to_string(self.root.host("etc/nsswitch.conf")) else {
            return;
        };
        let mut services = BTreeSet::new();
        for line in conf.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let Some((_, rest)) = line.split_once(':') else {
                continue;
            };
            for w in rest.split_whitespace() {
                if !w.starts_with('[') {
                    services.insert(w.to_string());
                }
            }
        }
        let dirs: Vec<String> = self
            .ld_conf
            .iter()
            .cloned()
            .chain(["/lib".into(), "/usr/lib".into()])
            .collect();
        for s in services {
            for d in &dirs {
                if self.add_path(&format!("{d}/libnss_{s}.so.2")) {
                    break;
                }
            }
        }
    }

    /// Library directories from `ld.so.conf` and its `include`s, in order.
    fn read_ld_conf(&self, rel: &str, depth: usize) -> Vec<String> {
        let mut out = Vec::new();
        if depth > 8 {
            return out;
        }
        let Ok(text) = std::fs::read_to_string(self.root.host(rel)) else {
            return out;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if let Some(pattern) = line.strip_prefix("include") {
                let pattern = pattern.trim();
                let pattern = if pattern.starts_with('/') {
                    pattern.to_string()
                } else {
                    format!("/etc/{pattern}")
                };
                let (dir, glob) = pattern.rsplit_once('/').unwrap_or(("", &pattern));
                let Ok(rd) = std::fs::read_dir(self.root.host(dir)) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                let matcher = globset::Glob::new(glob).ok().map(|g| g.compile_matcher());
                for n in names {
                    if matcher.as_ref().is_some_and(|m| m.is_match(&n)) {
                        out.extend(self.read_ld_conf(
                            &format!("{}/{n}", dir.trim_start_matches('/')),
                            depth + 1,
                        ));
                    }
                }
            } else if line.starts_with('/') {
                out.push(line.to_string());
            }
        }
        out
    }
}

fn parent(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(String::new(), |(d, _)| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn gcc(args: &[&str]) -> bool {
        Command::new("gcc")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A real executable with `RUNPATH=$ORIGIN/../lib`, a library found
    /// through the image's `ld.so.conf.d`, a symlink chain, and a `#!`
    /// script run through `/usr/bin/env`.
    #[test]
    fn follows_runpath_ld_so_conf_links_and_scripts() {
        if Command::new("gcc").arg("--version").output().is_err() {
            eprintln!("skipping: gcc is not installed");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let src = r.join("src");
        std::fs::create_dir_all(&src).unwrap();
        for dir in [
            "opt/app/bin",
            "opt/app/lib",
            "opt/extra",
            "etc/ld.so.conf.d",
            "usr/bin",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(src.join("a.c"), "int a(void) { return 1; }\n").unwrap();
        std::fs::write(src.join("b.c"), "int b(void) { return 2; }\n").unwrap();
        std::fs::write(
            src.join("m.c"),
            "int a(void); int b(void); int main(void) { return a() + b(); }\n",
        )
        .unwrap();
        let s = |p: &str| r.join(p).to_string_lossy().into_owned();
        assert!(gcc(&[
            "-shared",
            "-fPIC",
            "-Wl,-soname,liba.so.1",
            "-o",
            &s("opt/app/lib/liba.so.1.0"),
            &s("src/a.c")
        ]));
        assert!(gcc(&[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libb.so.2",
            "-o",
            &s("opt/extra/libb.so.2"),
            &s("src/b.c")
        ]));
        std::os::unix::fs::symlink("liba.so.1.0", r.join("opt/app/lib/liba.so.1")).unwrap();
        std::os::unix::fs::symlink("liba.so.1", r.join("opt/app/lib/liba.so")).unwrap();
        assert!(gcc(&[
            "-o",
            &s("opt/app/bin/app"),
            &s("src/m.c"),
            &format!("-L{}", s("opt/app/lib")),
            &format!("-L{}", s("opt/extra")),
            "-la",
            "-l:libb.so.2",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ]));
        std::fs::write(
            r.join("etc/ld.so.conf"),
            "include /etc/ld.so.conf.d/*.conf\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/ld.so.conf.d/extra.conf"),
            "# extra\n/opt/extra\n",
        )
        .unwrap();
        std::fs::write(
            r.join("usr/bin/run-app"),
            "#!/usr/bin/env tool\nexec /opt/app/bin/app\n",
        )
        .unwrap();
        std::fs::write(r.join("usr/bin/env"), "").unwrap();
        std::fs::write(r.join("usr/bin/tool"), "").unwrap();
        std::os::unix::fs::symlink("../../opt/app/bin/app", r.join("usr/bin/app-link")).unwrap();

        let mut c = Closure::new(Root { dir: r }, &["PATH=/usr/bin".into()]);
        c.add_command("app-link", "/");
        c.add_command("run-app", "/");
        c.run();
        for want in [
            "usr/bin/app-link",
            "opt/app/bin/app",
            "opt/app/lib/liba.so.1",
            "opt/app/lib/liba.so.1.0",
            "opt/extra/libb.so.2",
            "usr/bin/run-app",
            "usr/bin/env",
            "usr/bin/tool",
        ] {
            assert!(c.keep.contains(want), "{want} missing from {:?}", c.keep);
        }
        assert!(
            !c.keep.contains("opt/app/lib/liba.so"),
            "the dev symlink is not needed"
        );
        assert!(c.missing.is_empty(), "{:?}", c.missing);
    }
}
