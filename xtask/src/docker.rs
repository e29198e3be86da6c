//! `cargo xtask docker`: the container images (`keel`, `keel-demo-callee`, `keel-demo-caller`,
//! `keel-nats`, `keel-git`), built `FROM scratch` out of contexts staged under `target/docker/`.
//!
//! Nothing is pulled (this machine has no registry): the Rust binaries are the workspace's
//! static glibc release builds; NATS and the git server are Debian's `nats-server` and `git`
//! plus the libraries `ldd` lists. The Dockerfiles live in `deploy/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::ci::{cargo, prepare_nats, root, run_checked};

/// The non-root user every image runs as (distroless' `nonroot`).
const UID: u32 = 65532;

/// (image tag, Dockerfile in deploy/, binaries from target/<triple>/release).
const IMAGES: &[(&str, &str, &[&str])] = &[
    ("keel:latest", "keel.Dockerfile", &["keel"]),
    (
        "keel-demo-callee:latest",
        "demo-callee.Dockerfile",
        &["keel", "demo-callee"],
    ),
    (
        "keel-demo-caller:latest",
        "demo-caller.Dockerfile",
        &["keel", "demo-caller"],
    ),
];

const NATS_IMAGE: &str = "keel-nats:latest";
/// The config repository's git:// server: gix fetches `file://` remotes by spawning
/// `git-upload-pack`, which a scratch image lacks, so config servers fetch over git:// instead.
const GIT_IMAGE: &str = "keel-git:latest";

/// The tags `cargo xtask docker` builds, for callers that check they exist.
pub fn image_tags() -> Vec<&'static str> {
    IMAGES
        .iter()
        .map(|(tag, _, _)| *tag)
        .chain([NATS_IMAGE, GIT_IMAGE])
        .collect()
}

/// Whether a Docker engine answers.
pub fn engine_available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds the release binaries and every image, then prints the images' sizes.
pub fn run() -> anyhow::Result<()> {
    if !engine_available() {
        bail!("no Docker engine answers `docker version`; start one to build the images");
    }
    run_checked(cargo().args([
        "build",
        "--release",
        "-p",
        "keel",
        "-p",
        "demo-callee",
        "-p",
        "demo-caller",
    ]))?;
    let root = root();
    let release = root.join("target/x86_64-unknown-linux-gnu/release");
    let staging = root.join("target/docker");
    for (tag, dockerfile, binaries) in IMAGES {
        let context = staging.join(image_name(tag));
        fresh_dir(&context)?;
        base_rootfs(&context)?;
        for bin in *binaries {
            link_or_copy(&release.join(bin), &context.join(bin))?;
        }
        build(tag, &root.join("deploy").join(dockerfile), &context)?;
    }
    let context = staging.join("nats");
    fresh_dir(&context)?;
    base_rootfs(&context)?;
    copy_executables(&context.join("rootfs"), &[prepare_nats()?])?;
    build(NATS_IMAGE, &root.join("deploy/nats.Dockerfile"), &context)?;

    let context = staging.join("git");
    fresh_dir(&context)?;
    git_rootfs(&root, &context)?;
    build(GIT_IMAGE, &root.join("deploy/git.Dockerfile"), &context)?;
    println!("{:<28} {:>10}", "IMAGE", "SIZE");
    for tag in image_tags() {
        println!("{tag:<28} {:>7.1} MB", image_size(tag)? as f64 / 1e6);
    }
    Ok(())
}

fn image_name(tag: &str) -> &str {
    tag.split(':').next().unwrap_or(tag)
}

fn build(tag: &str, dockerfile: &Path, context: &Path) -> anyhow::Result<()> {
    run_checked(
        Command::new("docker")
            .args(["build", "--quiet", "--tag", tag, "--file"])
            .arg(dockerfile)
            .arg(context)
            // The classic builder: this engine has no buildx.
            .env("DOCKER_BUILDKIT", "0"),
    )
}

fn image_size(tag: &str) -> anyhow::Result<u64> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", tag])
        .output()
        .context("docker image inspect")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("size of {tag}"))
}

fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

/// `rootfs/`: CA certificates (for https git remotes), a passwd entry for the numeric user,
/// and a writable `/data` and `/tmp` (scratch has neither; COPY keeps the modes set here).
fn base_rootfs(context: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let rootfs = context.join("rootfs");
    let certs = rootfs.join("etc/ssl/certs");
    std::fs::create_dir_all(&certs)?;
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        certs.join("ca-certificates.crt"),
    )
    .context("copy /etc/ssl/certs/ca-certificates.crt (install the ca-certificates package)")?;
    std::fs::write(
        rootfs.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nkeel:x:{UID}:{UID}:keel:/data:/sbin/nologin\n"
        ),
    )?;
    std::fs::write(
        rootfs.join("etc/group"),
        format!("root:x:0:\nkeel:x:{UID}:\n"),
    )?;
    for (dir, mode) in [("data", 0o777), ("tmp", 0o1777)] {
        let path = rootfs.join(dir);
        std::fs::create_dir_all(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Copies executables and every library `ldd` lists into `rootfs` at the paths the dynamic
/// loader expects (following symlinks: the image gets the real files under those names).
fn copy_executables(rootfs: &Path, executables: &[PathBuf]) -> anyhow::Result<()> {
    let mut files = executables.to_vec();
    for exe in executables {
        files.extend(ldd(exe)?);
    }
    for file in files {
        let dest = rootfs.join(file.strip_prefix("/").unwrap_or(&file));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&file, &dest).with_context(|| format!("copy {}", file.display()))?;
    }
    Ok(())
}

/// `rootfs/` for the git server: Debian's git, git-daemon and dash (for the entrypoint), the
/// sample configuration as the seed, and a writable `/srv/git`.
fn git_rootfs(root: &Path, context: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    base_rootfs(context)?;
    let rootfs = context.join("rootfs");
    let git = PathBuf::from("/usr/bin/git");
    let daemon = PathBuf::from("/usr/lib/git-core/git-daemon");
    if !git.exists() || !daemon.exists() {
        bail!("Debian's git is needed for the keel-git image: apt-get install git");
    }
    copy_executables(&rootfs, &[git, daemon, PathBuf::from("/bin/dash")])?;
    std::os::unix::fs::symlink("dash", rootfs.join("bin/sh"))?;
    // git daemon runs `git upload-pack`/`git receive-pack`, builtins reached through git.
    for builtin in ["git-upload-pack", "git-receive-pack", "git"] {
        std::os::unix::fs::symlink(
            "../../bin/git",
            rootfs.join("usr/lib/git-core").join(builtin),
        )?;
    }
    let bin = rootfs.join("usr/local/bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(root.join("deploy/git-server.sh"), bin.join("git-server"))?;
    std::fs::set_permissions(
        bin.join("git-server"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let seed = rootfs.join("seed");
    std::fs::create_dir_all(&seed)?;
    let sample = root.join("crates/keel-config/src/sample");
    for entry in std::fs::read_dir(&sample).context("read the sample configuration")? {
        let entry = entry?;
        std::fs::copy(entry.path(), seed.join(entry.file_name()))?;
    }
    let srv = rootfs.join("srv/git");
    std::fs::create_dir_all(&srv)?;
    std::fs::set_permissions(&srv, std::fs::Permissions::from_mode(0o777))?;
    Ok(())
}

/// The absolute library paths (and the loader) a dynamic executable needs.
fn ldd(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("run ldd")?;
    if !out.status.success() {
        bail!("ldd {} failed", binary.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux… (0x…)"
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn link_or_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}
