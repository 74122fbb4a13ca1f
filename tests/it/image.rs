//! The container image, laid out by scripts/image.sh (the script the Dockerfile runs) from the binary these
//! tests run. The binary is static; the image holds exactly what the script documents; the archive is a
//! valid OCI layout and `docker save` archive whose digests match, the same bytes every time; and the
//! image's root filesystem alone, as user 65532, runs the controller against the test bed's API server,
//! found by name through the image's own /etc/hosts.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sha2::{Digest, Sha256};

const BINARY: &str = env!("CARGO_BIN_EXE_tributary");

/// Runs `scripts/image.sh assemble` into a new folder and returns it with the digest the script printed.
fn assemble() -> (PathBuf, String) {
    let out = std::env::temp_dir().join(common::unique("image"));
    let run = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/image.sh"))
        .args(["assemble", BINARY])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "image.sh assemble failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let digest = stdout
        .lines()
        .find(|l| l.starts_with("sha256:"))
        .unwrap()
        .to_owned();
    (out, digest)
}

/// Whether the ELF file has a program interpreter (PT_INTERP), i.e. is dynamically linked.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "64-bit ELF expected");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let phoff = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    found
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let data = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        format!("{:x}", Sha256::digest(&data)),
        hex,
        "blob {digest} does not match its digest"
    );
    data
}

#[test]
fn the_image_holds_the_static_binary_and_is_a_valid_reproducible_archive() {
    let elf = std::fs::read(BINARY).unwrap();
    assert!(
        !has_interpreter(&elf),
        "{BINARY} is dynamically linked: build the tests with scripts/cargo-env.sh sourced (make test does)"
    );
    let (out, digest) = assemble();
    let expected: BTreeSet<String> = [
        "tributary",
        "etc/passwd",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/ssl/certs/ca-certificates.crt",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(files_under(&out.join("rootfs")), expected);
    let passwd = std::fs::read_to_string(out.join("rootfs/etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");

    let layout = out.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(out.join("tributary.tar"))
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    assert_eq!(json(&layout.join("oci-layout"))["imageLayoutVersion"], "1.0.0");
    let index = json(&layout.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], digest.as_str());
    let reference = format!("tributary:{}", tributary::VERSION);
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        reference.as_str()
    );
    let manifest: Value = serde_json::from_slice(&blob(&layout, &digest)).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(&layout, manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/tributary"]));
    let layer = blob(&layout, manifest["layers"][0]["digest"].as_str().unwrap());
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{:x}", Sha256::digest(&layer)).as_str()
    );
    // The `docker save` view of the same blobs.
    let docker = json(&layout.join("manifest.json"));
    assert_eq!(docker[0]["RepoTags"][0], reference.as_str());
    assert!(layout.join(docker[0]["Layers"][0].as_str().unwrap()).is_file());

    let (again, same) = assemble();
    assert_eq!(same, digest, "the same binary must give the same image");
    for dir in [out, again] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn the_image_alone_runs_the_controller_as_nonroot_against_the_api_server() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "image").await;
    let (out, _) = assemble();
    let root = out.join("rootfs");

    // The API server by name (`localhost`, which its certificate names), resolved from the image's own
    // /etc/hosts; its CA inline, since no file of the host is visible inside.
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let admin: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(common::var("KUBECONFIG")).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let ca = std::fs::read(cluster["certificate-authority"].as_str().unwrap()).unwrap();
    let server = cluster["server"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1", "localhost");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {
            "server": server,
            "certificate-authority-data": base64_encode(&ca),
        }}],
        "users": [{"name": "admin", "user": admin["users"][0]["user"].clone()}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
        "current-context": "testbed",
    });
    std::fs::write(
        root.join("kubeconfig"),
        serde_yaml_ng::to_string(&kubeconfig).unwrap(),
    )
    .unwrap();
    let aws = common::var("AWS_ENDPOINT_URL").replace("127.0.0.1", "localhost");

    let port = common::free_port();
    // A container runtime gives every container the devices of the OCI runtime spec (/dev/null, zero,
    // full, random, urandom, tty); the static binary reads /dev/urandom for its hash seeds. As root they
    // are made here and chroot switches to the image's user; otherwise a user and mount namespace maps
    // this user to root and binds the host's /dev.
    std::fs::create_dir_all(root.join("dev")).unwrap();
    let root_user = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let controller_args = [
        "/tributary",
        "controller",
        "--watch-namespace",
        &ns,
        "--leader-election-namespace",
        &ns,
        "--identity",
        "image-test",
        "--metrics-listen",
        &format!("127.0.0.1:{port}"),
    ];
    let mut command = if root_user.trim() == "0" {
        for (name, minor) in [
            ("null", "3"),
            ("zero", "5"),
            ("full", "7"),
            ("random", "8"),
            ("urandom", "9"),
        ] {
            let made = Command::new("mknod")
                .args(["-m", "666"])
                .arg(root.join("dev").join(name))
                .args(["c", "1", minor])
                .status()
                .unwrap();
            assert!(made.success(), "mknod /dev/{name}");
        }
        let mut c = Command::new("chroot");
        c.arg("--userspec=65532:65532").arg(&root).args(controller_args);
        c
    } else {
        let mut c = Command::new("unshare");
        let root = root.display().to_string();
        c.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(r#"mount --rbind /dev "$0/dev" && exec chroot "$0" "$@""#)
            .arg(&root)
            .args(controller_args);
        c
    };
    let log_path = out.join("controller.log");
    let mut controller = command
        .env_clear()
        // For finding chroot (and unshare) only; nothing inside the image uses it.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("KUBECONFIG", "/kubeconfig")
        .env("AWS_ENDPOINT_URL", aws)
        .env("AWS_REGION", common::var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(answer) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await
                && answer.status().is_success()
            {
                return;
            }
            if controller.try_wait().unwrap().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let exited = controller.try_wait().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let status = controller.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        ready.is_ok() && exited.is_none(),
        "the controller in the image did not become ready:\n{log}"
    );
    assert!(status.success(), "it exited with {status} on SIGTERM:\n{log}");
    std::fs::remove_dir_all(out).unwrap();
    common::tools::kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
