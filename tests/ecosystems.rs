//! Every ecosystem in one image, each checked against its own tool's
//! truth: rpm packages built by `rpmbuild` and installed by `rpm` (SQLite
//! rpmdb; the same headers in a Berkeley DB `Packages` that rpm's `bdb_ro`
//! reads back, and in an NDB `Packages.db`), `npm install` of real
//! registry packages (`npm ls`), Debian's jars and a fat jar made of them
//! (their `pom.properties`), Debian's gemspecs (`Gem::Specification`),
//! a Composer project (`composer show`), a .NET `deps.json`, and a Go
//! binary (`go version -m`). Then: CycloneDX and SPDX validate, and with
//! every `package.json` deleted a DB built with `--npm-lockfile` still
//! names every npm package at its exact version.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

type Set = BTreeSet<(String, String)>;

const TOOLS: &[&str] = &[
    "rpmbuild",
    "bundle",
    "rpm",
    "db5.3_load",
    "sqlite3",
    "npm",
    "umoci",
    "ruby",
    "composer",
    "go",
    "python3",
];

struct Fixture {
    root: PathBuf,
    umoci: Umoci,
    rpm: Set,
    npm: Set,
    yarn: Set,
    pnpm: Set,
    java: Set,
    gem: Set,
    gemfile_lock: Set,
    composer: Set,
    go_deps: Set,
}

fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| TOOLS.iter().all(|t| have(t)).then(build))
        .as_ref()
}

fn build() -> Fixture {
    // A static is never dropped, so a TempDir here would outlive every
    // run: one directory under cargo's scratch space, emptied each time.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ecosystems");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let umoci = Umoci::new(&root, "eco");
    let rootfs = umoci.rootfs();
    write_file(
        &rootfs.join("etc/os-release"),
        "ID=rocky\nVERSION_ID=\"9.3\"\nNAME=\"Rocky Linux\"\n",
    );
    let rpm = rpm_fixture(&root, &rootfs);
    let npm = npm_fixture(&rootfs);
    let yarn = lockfile_project(&rootfs.join("srv/yarn"), Lockfile::Yarn);
    let pnpm = lockfile_project(&rootfs.join("srv/pnpm"), Lockfile::Pnpm);
    let java = java_fixture(&rootfs);
    let gem = gem_fixture(&rootfs);
    let gemfile_lock = gemfile_lock_fixture(&rootfs.join("srv/ruby-app"));
    let composer = composer_fixture(&root, &rootfs);
    write_file(&rootfs.join("opt/dotnet/app.deps.json"), DEPS_JSON);
    let go_deps = go_fixture(&rootfs);
    umoci.repack();
    let f = Fixture {
        root,
        umoci,
        rpm,
        npm,
        yarn,
        pnpm,
        java,
        gem,
        gemfile_lock,
        composer,
        go_deps,
    };
    if let Some(dest) = std::env::var_os("KILN_ECO_EXPORT") {
        export(&f, Path::new(&dest));
    }
    f
}

/// For bench/ecosystems.sh: the image's layout and each ecosystem's truth.
fn export(f: &Fixture, dest: &Path) {
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).unwrap();
    sh(Command::new("cp")
        .arg("-a")
        .arg(&f.umoci.layout)
        .arg(dest.join("layout")));
    let list = |s: &Set| {
        s.iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
    };
    let truth = serde_json::json!({
        "rpm": list(&f.rpm), "npm": list(&f.npm), "java-archive": list(&f.java),
        "gem": list(&f.gem), "php-composer": list(&f.composer),
        "dotnet": ["Newtonsoft.Json 13.0.3", "Serilog 3.1.1"],
        "go-module": list(&f.go_deps),
    });
    write_file(&dest.join("truth.json"), &truth.to_string());
}

fn lines_to_set(out: &[u8]) -> Set {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const SPEC: &str = "Name: NAME\nVersion: VERSION\nRelease: 3.el9\nEPOCH\nSummary: kiln test\nLicense: MIT\nVendor: kiln\nBuildArch: x86_64\n%description\nkiln test\n%install\nmkdir -p %{buildroot}/usr/share/NAME\necho NAME > %{buildroot}/usr/share/NAME/README\n%files\n/usr/share/NAME/README\n";

/// rpmbuild three packages, install them with rpm into the image's SQLite
/// rpmdb; the truth is `rpm -qa`.
fn rpm_fixture(root: &Path, rootfs: &Path) -> Set {
    let top = root.join("rpmbuild");
    for (name, version, epoch) in [
        ("kiln-one", "1.0.0", ""),
        ("kiln-two", "2.3~rc1", "Epoch: 4"),
        ("kiln-three", "0.9", ""),
    ] {
        let spec = top.join(format!("{name}.spec"));
        let text = SPEC
            .replace("NAME", name)
            .replace("VERSION", version)
            .replace("EPOCH", epoch);
        write_file(&spec, &text);
        sh(Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec));
    }
    let rpms: Vec<PathBuf> = walkdir::WalkDir::new(top.join("RPMS"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rpm"))
        .map(|e| e.path().to_path_buf())
        .collect();
    sh(Command::new("rpm")
        .arg("--root")
        .arg(rootfs)
        .args(["--dbpath", "/var/lib/rpm", "--nodeps", "--noscripts", "-i"])
        .args(&rpms));
    rpm_qa(rootfs, None)
}

fn rpm_qa(rootfs: &Path, backend: Option<&str>) -> Set {
    let mut cmd = Command::new("rpm");
    if let Some(b) = backend {
        cmd.args(["--define", &format!("_db_backend {b}")]);
    }
    let out = sh(cmd.arg("--root").arg(rootfs).args([
        "--dbpath",
        "/var/lib/rpm",
        "-qa",
        "--qf",
        "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\\n",
    ]));
    lines_to_set(&out.stdout)
}

/// The header blobs rpm stored, `(hnum, blob)`.
fn rpm_blobs(rootfs: &Path) -> Vec<(u32, Vec<u8>)> {
    let out = sh(Command::new("sqlite3")
        .arg(rootfs.join("var/lib/rpm/rpmdb.sqlite"))
        .arg("SELECT hnum, hex(blob) FROM Packages ORDER BY hnum"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(n, h)| {
            (
                n.parse().unwrap(),
                hex::decode(h.to_ascii_lowercase()).unwrap(),
            )
        })
        .collect()
}

/// Write `(hnum, blob)` records into a Berkeley DB hash at `dest` with
/// Debian's `db5.3_load`, keyed as rpm keys them (native-endian header
/// numbers).
fn db_load(scratch: &Path, blobs: &[(u32, Vec<u8>)], page_size: Option<u32>, dest: &Path) {
    let mut dump = String::from("VERSION=3\nformat=bytevalue\ntype=hash\nHEADER=END\n");
    for (n, b) in blobs {
        dump += &format!(" {}\n {}\n", hex::encode(n.to_le_bytes()), hex::encode(b));
    }
    dump += "DATA=END\n";
    let input = tempfile::NamedTempFile::new_in(scratch).unwrap();
    std::fs::write(input.path(), dump).unwrap();
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let mut cmd = Command::new("db5.3_load");
    if let Some(p) = page_size {
        cmd.args(["-c", &format!("db_pagesize={p}")]);
    }
    sh(cmd.arg("-f").arg(input.path()).arg(dest));
}

/// The registry packages every npm fixture project installs.
const NPM_DEPS: &[&str] = &[
    "debug@2.6.9",
    "agent-base@7.1.0",
    "@types/ms@0.7.34",
    "semver@7.5.1",
];

#[derive(Clone, Copy)]
enum Lockfile {
    Yarn,
    Pnpm,
}

/// A project locked by the real yarn (1.22) or pnpm (9), both fetched
/// from the npm registry with `npx`, its `node_modules` then removed so
/// only the lockfile declares the packages; the truth is the tool's own
/// `list`/`ls` taken before the removal.
fn lockfile_project(dir: &Path, tool: Lockfile) -> Set {
    let deps: serde_json::Map<String, Value> = NPM_DEPS
        .iter()
        .map(|d| {
            let (n, v) = d.rsplit_once('@').unwrap();
            (n.to_string(), Value::String(v.to_string()))
        })
        .collect();
    let manifest = serde_json::json!({"name": "locked", "version": "1.0.0", "private": true, "dependencies": deps});
    write_file(&dir.join("package.json"), &manifest.to_string());
    let npx = |args: &[&str]| sh(Command::new("npx").current_dir(dir).arg("--yes").args(args));
    let truth = match tool {
        Lockfile::Yarn => {
            npx(&[
                "yarn@1.22.19",
                "install",
                "--ignore-scripts",
                "--silent",
                "--no-progress",
            ]);
            let out = npx(&["yarn@1.22.19", "list", "--json", "--silent"]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut set = Set::new();
            fn walk(nodes: &Value, set: &mut Set) {
                for n in nodes.as_array().into_iter().flatten() {
                    if n["shadow"] != true {
                        let (name, version) = n["name"].as_str().unwrap().rsplit_once('@').unwrap();
                        set.insert((name.to_string(), version.to_string()));
                    }
                    walk(&n["children"], set);
                }
            }
            walk(&v["data"]["trees"], &mut set);
            set
        }
        Lockfile::Pnpm => {
            npx(&["pnpm@9.15.0", "install", "--ignore-scripts", "--silent"]);
            let out = npx(&["pnpm@9.15.0", "ls", "--json", "--depth", "Infinity"]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut set = Set::new();
            fn walk(deps: &Value, set: &mut Set) {
                for (name, d) in deps.as_object().into_iter().flatten() {
                    set.insert((name.clone(), d["version"].as_str().unwrap().to_string()));
                    walk(&d["dependencies"], set);
                }
            }
            walk(&v[0]["dependencies"], &mut set);
            set
        }
    };
    std::fs::remove_dir_all(dir.join("node_modules")).unwrap();
    truth
}

const APP_PACKAGE_JSON: &str =
    r#"{"name": "app", "version": "1.0.0", "private": true, "workspaces": ["packages/*"]}"#;

/// `npm install` real packages (a nested older `debug`, a scoped one, a
/// workspace member, a `semver` with a published advisory); the truth is
/// `npm ls --all --json`.
fn npm_fixture(rootfs: &Path) -> Set {
    let app = rootfs.join("app");
    write_file(&app.join("package.json"), APP_PACKAGE_JSON);
    write_file(
        &app.join("packages/util/package.json"),
        r#"{"name": "@app/util", "version": "0.1.0"}"#,
    );
    sh(Command::new("npm")
        .current_dir(&app)
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--silent",
        ])
        .args(NPM_DEPS));
    let out = sh(Command::new("npm")
        .current_dir(&app)
        .args(["ls", "--all", "--json"]));
    let tree: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut set = Set::new();
    fn walk(deps: &Value, set: &mut Set) {
        for (name, d) in deps.as_object().into_iter().flatten() {
            if let Some(v) = d["version"].as_str() {
                set.insert((name.clone(), v.to_string()));
            }
            walk(&d["dependencies"], set);
        }
    }
    walk(&tree["dependencies"], &mut set);
    // A project that only declares its packages: the lockfile, no node_modules.
    let lock = std::fs::read_to_string(app.join("package-lock.json")).unwrap();
    write_file(&rootfs.join("srv/declared/package-lock.json"), &lock);
    set
}

/// Debian's jars, and a Spring Boot–style fat jar holding them; the
/// truth is every `pom.properties` inside, nested ones included.
fn java_fixture(rootfs: &Path) -> Set {
    let jars: Vec<PathBuf> = ["commons-lang3.jar", "guava.jar"]
        .iter()
        .map(|j| {
            std::fs::canonicalize(Path::new("/usr/share/java").join(j))
                .expect("Debian's libcommons-lang3-java and libguava-java (scripts/setup.sh)")
        })
        .collect();
    let dest = rootfs.join("opt/java");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(rootfs.join("opt/app")).unwrap();
    for j in &jars {
        std::fs::copy(j, dest.join(j.file_name().unwrap())).unwrap();
    }
    let script = r#"
import sys, zipfile, io
out, inner = sys.argv[1], sys.argv[2:]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.JarLauncher\r\n\r\n")
    for p in inner:
        z.write(p, "BOOT-INF/lib/" + p.rsplit("/", 1)[1])
"#;
    sh(Command::new("python3")
        .args(["-c", script])
        .arg(rootfs.join("opt/app/app.jar"))
        .args(&jars));
    let truth = r##"
import sys, zipfile, io
def walk(z):
    for n in z.namelist():
        if n.startswith("META-INF/maven/") and n.endswith("/pom.properties"):
            kv = dict(l.split("=", 1) for l in z.read(n).decode().splitlines() if "=" in l and not l.startswith("#"))
            print(kv["groupId"].strip() + ":" + kv["artifactId"].strip(), kv["version"].strip())
        if n.endswith(".jar"):
            walk(zipfile.ZipFile(io.BytesIO(z.read(n))))
for p in sys.argv[1:]:
    walk(zipfile.ZipFile(p))
"##;
    let out = sh(Command::new("python3")
        .args(["-c", truth])
        .arg(rootfs.join("opt/app/app.jar"))
        .args(jars.iter().map(|j| dest.join(j.file_name().unwrap()))));
    lines_to_set(&out.stdout)
}

/// Debian's installed gemspecs (ruby-rack and Ruby's own); the truth is
/// what `Gem::Specification.load` reads from each.
fn gem_fixture(rootfs: &Path) -> Set {
    let specs = Path::new("/usr/share/rubygems-integration/all/specifications");
    let dest = rootfs.join("usr/share/rubygems-integration/all/specifications");
    std::fs::create_dir_all(&dest).unwrap();
    let mut copied = Vec::new();
    for e in std::fs::read_dir(specs)
        .expect("Debian's ruby-rack (scripts/setup.sh)")
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "gemspec") {
            let to = dest.join(e.file_name());
            std::fs::copy(e.path(), &to).unwrap();
            copied.push(to);
        }
    }
    assert!(copied
        .iter()
        .any(|p| p.to_string_lossy().contains("/rack-")));
    let out = sh(Command::new("ruby")
        .args([
            "-e",
            "ARGV.each { |f| s = Gem::Specification.load(f); puts \"#{s.name} #{s.version}\" }",
        ])
        .args(&copied));
    lines_to_set(&out.stdout)
}

/// A Bundler project locked offline (`bundle lock --local`) against the
/// gems Debian installed; the truth is Bundler's own lockfile parser.
fn gemfile_lock_fixture(dir: &Path) -> Set {
    write_file(
        &dir.join("Gemfile"),
        "source \"https://rubygems.org\"\ngem \"rack\"\ngem \"webrick\"\n",
    );
    sh(Command::new("bundle")
        .current_dir(dir)
        .args(["lock", "--local"])
        .env("BUNDLE_USER_HOME", dir.join(".bundle-home")));
    std::fs::remove_dir_all(dir.join(".bundle-home")).ok();
    let out = sh(Command::new("ruby").current_dir(dir).args([
        "-rbundler",
        "-e",
        "Bundler::LockfileParser.new(File.read('Gemfile.lock')).specs.each { |s| puts \"#{s.name} #{s.version}\" }",
    ]));
    lines_to_set(&out.stdout)
}

/// A Composer project requiring two local packages through a path
/// repository (packagist is not reachable here); the truth is
/// `composer show`.
fn composer_fixture(root: &Path, rootfs: &Path) -> Set {
    for (name, version) in [("kiln/alpha", "1.4.2"), ("kiln/beta", "0.3.0")] {
        let d = root.join("php").join(name.replace('/', "-"));
        write_file(
            &d.join("composer.json"),
            &format!(r#"{{"name": "{name}", "version": "{version}", "license": "MIT"}}"#),
        );
    }
    let project = rootfs.join("var/www");
    let repo = root.join("php").join("*").display().to_string();
    write_file(
        &project.join("composer.json"),
        &format!(
            r#"{{"name": "kiln/site", "repositories": [{{"packagist.org": false}}, {{"type": "path", "url": "{repo}", "options": {{"symlink": false}}}}], "require": {{"kiln/alpha": "1.4.2", "kiln/beta": "0.3.0"}}}}"#
        ),
    );
    sh(Command::new("composer")
        .current_dir(&project)
        .env("COMPOSER_ALLOW_SUPERUSER", "1")
        .env("COMPOSER_HOME", root.join("composer-home"))
        .args([
            "install",
            "--no-interaction",
            "--quiet",
            "--no-plugins",
            "--no-scripts",
        ]));
    let out = sh(Command::new("composer")
        .current_dir(&project)
        .env("COMPOSER_ALLOW_SUPERUSER", "1")
        .env("COMPOSER_HOME", root.join("composer-home"))
        .args(["show", "--format=json", "--no-plugins"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// A .NET application's dependency manifest, in the published format.
const DEPS_JSON: &str = r#"{
  "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0", "signature": ""},
  "compilationOptions": {},
  "targets": {".NETCoreApp,Version=v8.0": {
    "app/1.0.0": {"dependencies": {"Newtonsoft.Json": "13.0.3", "Serilog": "3.1.1"}, "runtime": {"app.dll": {}}},
    "Newtonsoft.Json/13.0.3": {"runtime": {"lib/net6.0/Newtonsoft.Json.dll": {"assemblyVersion": "13.0.0.0", "fileVersion": "13.0.3.27908"}}},
    "Serilog/3.1.1": {"runtime": {"lib/net7.0/Serilog.dll": {"assemblyVersion": "2.0.0.0", "fileVersion": "3.1.1.0"}}}
  }},
  "libraries": {
    "app/1.0.0": {"type": "project", "serviceable": false, "sha512": ""},
    "Newtonsoft.Json/13.0.3": {"type": "package", "serviceable": true, "sha512": "sha512-HrC5BXdl00IP9zeV+0Z848QWPAoCr9P3bDEZguI+gkLcBKAOxix/tLEAAHC+UvDNPv4a2d18lOReHMOagPa+zQ==", "path": "newtonsoft.json/13.0.3", "hashPath": "newtonsoft.json.13.0.3.nupkg.sha512"},
    "Serilog/3.1.1": {"type": "package", "serviceable": true, "sha512": "sha512-P6G4/4Kt9bT635bhuwdXlJ2SCqqn2nhh4gqFqQueCOr9bK/e7W9ll/IoX1Ter948cV2Z/5+5v8pAfJYUISY03A==", "path": "serilog/3.1.1", "hashPath": "serilog.3.1.1.nupkg.sha512"}
  }
}"#;

/// A Go binary from the host (umoci, a Debian package); the truth is
/// what `go version -m` prints: the toolchain (as `stdlib`) and every
/// `dep` line (Debian's GOPATH builds have none).
fn go_fixture(rootfs: &Path) -> Set {
    let bin = rootfs.join("usr/local/bin/umoci");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy("/usr/bin/umoci", &bin).unwrap();
    let out = sh(Command::new("go").args(["version", "-m"]).arg(&bin));
    let text = String::from_utf8_lossy(&out.stdout);
    let toolchain = text
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(": go"))
        .map(|(_, v)| v.to_string())
        .expect("go version -m names the toolchain");
    let mut set: Set = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 4 && f[1] == "dep").then(|| (f[2].to_string(), f[3].to_string()))
        })
        .collect();
    set.insert(("stdlib".into(), toolchain));
    set
}

fn by(doc: &Value, kind: &str, found_by: Option<&str>) -> Set {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == kind && found_by.is_none_or(|f| p["found_by"] == f))
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn sbom_lists_exactly_each_ecosystems_installed_set() {
    let Some(f) = fixture() else { return };
    let doc = json(&[
        "sbom",
        &format!("oci-dir:{}", f.umoci.image()),
        "-o",
        "json",
    ]);
    assert_eq!(by(&doc, "rpm", None), f.rpm, "rpm");
    assert_eq!(
        by(&doc, "npm", Some("javascript-package-cataloger")),
        f.npm,
        "installed npm"
    );
    let mut declared = f.npm.clone();
    declared.remove(&("@app/util".to_string(), "0.1.0".to_string()));
    assert_eq!(
        by(&doc, "npm", Some("javascript-lock-cataloger")),
        declared,
        "npm lockfile"
    );
    for (dir, truth) in [("/srv/yarn/", &f.yarn), ("/srv/pnpm/", &f.pnpm)] {
        let at: Set = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["locations"][0]["path"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(dir)
            })
            .map(|p| {
                (
                    p["name"].as_str().unwrap().into(),
                    p["version"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(&at, truth, "{dir}");
    }
    assert_eq!(by(&doc, "java", None), f.java, "java");
    assert_eq!(by(&doc, "gem", None), f.gem, "gems");
    assert_eq!(
        by(&doc, "gem", Some("ruby-gemfile-cataloger")),
        f.gemfile_lock,
        "Gemfile.lock"
    );
    assert_eq!(by(&doc, "composer", None), f.composer, "composer");
    let dotnet: Set = [("Newtonsoft.Json", "13.0.3"), ("Serilog", "3.1.1")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(by(&doc, "dotnet", None), dotnet, ".NET");
    let go = by(&doc, "go", None);
    assert!(
        f.go_deps.is_subset(&go),
        "go deps missing: {:?}",
        f.go_deps.difference(&go).collect::<Vec<_>>()
    );
    // The purls carry what each type needs.
    let purls: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["purl"].as_str())
        .collect();
    assert!(
        purls
            .contains(&"pkg:rpm/rocky/kiln-two@2.3~rc1-3.el9?arch=x86_64&distro=rocky-9.3&epoch=4"),
        "{purls:?}"
    );
    assert!(purls
        .iter()
        .any(|p| p.starts_with("pkg:npm/%40types/ms@0.7.34")));
    assert!(purls
        .iter()
        .any(|p| p.starts_with("pkg:maven/org.apache.commons/commons-lang3@")));
    assert!(
        doc["unknowns"].as_array().is_none_or(|u| u.is_empty()),
        "{}",
        doc["unknowns"]
    );
}

#[test]
fn cyclonedx_and_spdx_of_every_ecosystem_validate() {
    let Some(f) = fixture() else { return };
    let image = format!("oci-dir:{}", f.umoci.image());
    for (format, script) in [
        ("cyclonedx-json", "validate_cyclonedx.py"),
        ("spdx-json", "validate_spdx.py"),
    ] {
        let out = f.root.join(format!("eco-{format}.json"));
        write_validated(&["sbom", &image, "-o", format], &out, script);
    }
}

/// The same headers rpm wrote, in a Berkeley DB hash that rpm's own
/// `bdb_ro` backend reads back, and in an NDB `Packages.db`.
#[test]
fn berkeley_db_and_ndb_rpmdbs_give_the_same_packages() {
    let Some(f) = fixture() else { return };
    let blobs = rpm_blobs(&f.umoci.rootfs());
    let bdb = f.root.join("bdb-root");
    db_load(&f.root, &blobs, None, &bdb.join("var/lib/rpm/Packages"));
    assert_eq!(
        rpm_qa(&bdb, Some("bdb_ro")),
        f.rpm,
        "rpm's bdb_ro reads the fixture"
    );
    let doc = json(&["sbom", &format!("dir:{}", bdb.display()), "-o", "json"]);
    assert_eq!(by(&doc, "rpm", None), f.rpm);

    let ndb = f.root.join("ndb-root/usr/lib/sysimage/rpm");
    std::fs::create_dir_all(&ndb).unwrap();
    let only: Vec<Vec<u8>> = blobs.into_iter().map(|(_, b)| b).collect();
    std::fs::write(
        ndb.join("Packages.db"),
        kiln_catalog::rpm::ndb::write(&only),
    )
    .unwrap();
    let doc = json(&[
        "sbom",
        &format!("dir:{}", f.root.join("ndb-root").display()),
        "-o",
        "json",
    ]);
    assert_eq!(by(&doc, "rpm", None), f.rpm);
}

#[test]
fn npm_packages_are_named_exactly_with_every_package_json_deleted() {
    let Some(f) = fixture() else { return };
    let db = f.root.join("npm.db");
    sh(kiln()
        .args(["db", "build", "-q", "--db"])
        .arg(&db)
        .arg("--npm-lockfile")
        .arg(f.umoci.rootfs().join("app/package-lock.json")));
    let stripped = f.root.join("stripped");
    sh(Command::new("cp")
        .arg("-a")
        .arg(f.umoci.rootfs().join("app"))
        .arg(&stripped));
    for e in walkdir::WalkDir::new(&stripped)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        let n = e.file_name().to_string_lossy();
        if n == "package.json" || n.ends_with("package-lock.json") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let doc = scan_json(&db, &format!("dir:{}", stripped.display()));
    let mut want = f.npm.clone();
    want.remove(&("@app/util".to_string(), "0.1.0".to_string()));
    let exact: Set = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "npm" && p["evidence"]["resolution"] == "exact")
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(exact, want);
}

/// Hostile inputs are refused by name and never stop the other
/// catalogers: a Berkeley DB whose overflow chain loops, a zip bomb, jars
/// nested past the depth cap, a malformed lockfile.
#[test]
fn bad_metadata_is_reported_by_file_and_the_rest_is_still_listed() {
    let Some(f) = fixture() else { return };
    let root = f.root.join("hostile");
    write_file(
        &root.join("srv/broken/package-lock.json"),
        "{\"lockfileVersion\": 3, \"packages\": ",
    );
    let script = r#"
import sys, zipfile, io, shutil
root = sys.argv[1]
with zipfile.ZipFile(root + "/opt/bomb.jar", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/maven/x/bomb/pom.properties", "groupId=x\nartifactId=bomb\nversion=1\n")
    z.writestr("huge.jar", b"\0" * (300 << 20))
data = b""
for depth in range(7):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("META-INF/maven/x/deep%d/pom.properties" % depth, "groupId=x\nartifactId=deep%d\nversion=1\n" % depth)
        if data:
            z.writestr("inner.jar", data)
    data = buf.getvalue()
open(root + "/opt/deep.jar", "wb").write(data)
"#;
    std::fs::create_dir_all(root.join("opt")).unwrap();
    sh(Command::new("python3").args(["-c", script]).arg(&root));
    // A Berkeley DB copied from a real one, its overflow chain pointed at itself.
    let good = f.root.join("bdb-loop");
    // Small pages, so each header spans an overflow chain.
    let blobs = rpm_blobs(&f.umoci.rootfs());
    db_load(
        &f.root,
        &blobs,
        Some(512),
        &good.join("var/lib/rpm/Packages"),
    );
    let mut bytes = std::fs::read(good.join("var/lib/rpm/Packages")).unwrap();
    let page = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    let looped = (1..bytes.len() / page)
        .find(|&n| bytes[n * page + 25] == 7)
        .expect("an overflow page");
    bytes[looped * page + 16..looped * page + 20].copy_from_slice(&(looped as u32).to_le_bytes());
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    std::fs::write(root.join("var/lib/rpm/Packages"), bytes).unwrap();

    let doc = json(&["sbom", &format!("dir:{}", root.display()), "-o", "json"]);
    let unknowns = doc["unknowns"].to_string();
    for (path, why) in [
        ("/srv/broken/package-lock.json", "invalid package-lock.json"),
        ("/opt/bomb.jar:huge.jar", "cap"),
        ("/var/lib/rpm/Packages", "loops"),
        ("deep", "nested deeper"),
    ] {
        assert!(
            unknowns.contains(path) && unknowns.contains(why),
            "{path}: {why} not in {unknowns}"
        );
    }
    let java = by(&doc, "java", None);
    assert!(
        java.contains(&("x:bomb".to_string(), "1".to_string())),
        "{java:?}"
    );
    assert!(
        java.contains(&("x:deep0".to_string(), "1".to_string()))
            || java.contains(&("x:deep6".to_string(), "1".to_string()))
    );
}

/// Advisories in the OSV schema for each new ecosystem, matched in that
/// ecosystem's order: npm (GHSA-c2qf-rxjj-qqgw: semver 7.0.0 to 7.5.2;
/// GHSA-w9mr-4mfr-499f: ms before 2.0.0), Maven (GHSA-j288-q9x7-2f5v:
/// commons-lang3 3.0 to 3.18.0; GHSA-7g45-4rm6-3mm3: guava 1.0 to
/// 32.0.0-android), and rpm under the image's `Rocky Linux:9` (epoch and
/// `~` deciding; these advisories name the fixture's own packages).
#[test]
fn osv_advisories_match_in_each_ecosystems_order() {
    let Some(f) = fixture() else { return };
    let osv = f.root.join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    let advisory = |id: &str, eco: &str, name: &str, kind: &str, introduced: &str, fixed: &str| {
        let rec = serde_json::json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": "2026-11-30T00:00:00Z",
            "affected": [{
                "package": {"ecosystem": eco, "name": name},
                "ranges": [{"type": kind, "events": [{"introduced": introduced}, {"fixed": fixed}]}],
            }],
        });
        std::fs::write(osv.join(format!("{id}.json")), rec.to_string()).unwrap();
    };
    advisory(
        "GHSA-c2qf-rxjj-qqgw",
        "npm",
        "semver",
        "SEMVER",
        "7.0.0",
        "7.5.2",
    );
    advisory("GHSA-w9mr-4mfr-499f", "npm", "ms", "SEMVER", "0", "2.0.0");
    advisory(
        "GHSA-j288-q9x7-2f5v",
        "Maven",
        "org.apache.commons:commons-lang3",
        "ECOSYSTEM",
        "3.0",
        "3.18.0",
    );
    advisory(
        "GHSA-7g45-4rm6-3mm3",
        "Maven",
        "com.google.guava:guava",
        "ECOSYSTEM",
        "1.0",
        "32.0.0-android",
    );
    advisory(
        "KILN-RPM-1",
        "Rocky Linux:9",
        "kiln-two",
        "ECOSYSTEM",
        "0",
        "4:2.3-1.el9",
    );
    advisory(
        "KILN-RPM-2",
        "Rocky Linux:9",
        "kiln-one",
        "ECOSYSTEM",
        "0",
        "1.0.0~rc1-1.el9",
    );
    let db = f.root.join("vuln.db");
    sh(kiln()
        .args(["db", "vuln", "import", "--db"])
        .arg(&db)
        .arg("--osv")
        .arg(&osv));
    let image = format!("oci-dir:{}", f.umoci.image());
    let doc = json(&["vuln", &image, "--db", db.to_str().unwrap(), "-o", "json"]);
    let mut found: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap().into(),
                x["package"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    found.dedup();
    let want: Vec<(String, String)> = [
        ("GHSA-7g45-4rm6-3mm3", "com.google.guava:guava"),
        ("GHSA-c2qf-rxjj-qqgw", "semver"),
        ("GHSA-j288-q9x7-2f5v", "org.apache.commons:commons-lang3"),
        ("KILN-RPM-1", "kiln-two"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, want, "{}", doc["findings"]);
}
