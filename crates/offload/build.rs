//! Compiles `bpf/relay.bpf.c` into `$OUT_DIR/relay.bpf.o` when the `kernel`
//! feature is on (clang, `-target bpf`, headers from libbpf-dev and the
//! kernel's UAPI); without the feature it does nothing, so the default
//! build needs no C toolchain.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "bpf/relay.bpf.c";
const HEADER: &str = "bpf/relay.h";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed={HEADER}");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    if env::var_os("CARGO_FEATURE_KERNEL").is_none() {
        return;
    }
    if let Err(e) = compile() {
        println!("cargo:warning={e}");
        std::process::exit(1);
    }
}

fn compile() -> Result<(), String> {
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang".to_owned());
    // `bpf` is the host's byte order; name it so a cross build gets the
    // target's (the maps are shared with the target's userspace).
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb",
        _ => "bpfel",
    };
    let mut cmd = Command::new(&clang);
    cmd.args([
        "-O2", "-g", "-target", target, "-mcpu=v3", "-Wall", "-Werror",
    ]);
    // <linux/types.h> includes <asm/types.h>, which Debian keeps under the
    // multiarch directory that `-target bpf` does not search.
    if let Some(dir) = multiarch_include(&clang) {
        cmd.arg(format!("-I{dir}"));
    }
    cmd.args(["-c", SOURCE, "-o"]).arg(out.join("relay.bpf.o"));
    let status = cmd.status().map_err(|e| {
        format!(
            "feature `kernel`: cannot run `{clang}` ({e}); install clang and libbpf-dev \
             (apt-get install clang libbpf-dev) or set BPF_CLANG"
        )
    })?;
    if !status.success() {
        return Err(format!(
            "feature `kernel`: `{clang}` failed to compile {SOURCE}"
        ));
    }
    Ok(())
}

fn multiarch_include(clang: &str) -> Option<String> {
    let out = Command::new(clang).arg("-print-multiarch").output().ok()?;
    let triple = String::from_utf8(out.stdout).ok()?;
    let dir = format!("/usr/include/{}", triple.trim());
    (!triple.trim().is_empty() && std::path::Path::new(&dir).is_dir()).then_some(dir)
}
