//! The credential vault: every connection's secrets in one file, encrypted at rest.
//!
//! The key is derived from a passphrase with Argon2id (RFC 9106's second recommended
//! setting, 64 MiB and 3 passes, so guessing passphrases offline is slow) and the contents
//! are sealed with XChaCha20-Poly1305, whose 192-bit nonces can be drawn at random for each
//! save without any counter to keep. The header (format, Argon2 settings, salt) is the
//! associated data: changing any byte of it makes opening fail instead of deriving a
//! weaker key.
//!
//! The file is written whole to a temporary file beside it and renamed over it, with mode
//! 0600, so a crash mid-save leaves the previous vault, never half of one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::paths::Dirs;

/// The environment variable headless runs give the passphrase in.
pub const PASSPHRASE_VAR: &str = "TRIBUTARY_VAULT_PASSPHRASE";

const MAGIC: &[u8; 8] = b"TRIBVLT1";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN;
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;
/// The Argon2 settings a vault file may ask for. The header is authenticated only after
/// the key is derived, so a changed header could otherwise make Tributary allocate
/// terabytes or spin for hours before saying anything: these bounds are the only defence.
const M_COST_KIB_RANGE: std::ops::RangeInclusive<u32> = 8 * 1024..=1024 * 1024;
const T_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=10;
const P_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=16;

/// A secret value. It prints as `***` in `Debug` so it can sit in structs that are logged,
/// and its memory is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why the vault could not be opened or saved, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the vault is locked: give its passphrase in the app, at the prompt, or in {PASSPHRASE_VAR}"
    )]
    Locked,
    #[error("the vault passphrase is wrong (or {0} was changed)")]
    WrongPassphrase(PathBuf),
    #[error("{0} is not a Tributary vault file")]
    NotAVault(PathBuf),
    #[error(
        "{path} asks for key settings no Tributary vault uses ({what}); the file was changed or damaged: restore it from a backup, or remove it and add the connections again"
    )]
    BadSettings { path: PathBuf, what: String },
    #[error("the vault passphrase is empty")]
    EmptyPassphrase,
    #[error("{0}")]
    Io(String),
}

/// Secrets by connection name, then by field (`refresh_token`, `api_key`, ...).
type Contents = BTreeMap<String, BTreeMap<String, String>>;

/// An unlocked vault: the derived key and the decrypted contents, kept in memory for the
/// process so that the slow derivation runs once.
pub struct Vault {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    salt: [u8; SALT_LEN],
    contents: Contents,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("path", &self.path).finish()
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        for fields in self.contents.values_mut() {
            for value in fields.values_mut() {
                zeroize::Zeroize::zeroize(value);
            }
        }
    }
}

/// The vault file of an installation.
pub fn vault_file(dirs: &Dirs) -> PathBuf {
    dirs.config.join("vault.bin")
}

impl Vault {
    /// Opens the vault file with the passphrase, or starts an empty one that the first
    /// save creates.
    pub fn unlock(path: &Path, passphrase: &str) -> Result<Vault, VaultError> {
        if passphrase.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut salt = [0; SALT_LEN];
                OsRng.fill_bytes(&mut salt);
                let key = derive(passphrase, &salt, M_COST_KIB, T_COST, P_COST)?;
                return Ok(Vault {
                    path: path.to_path_buf(),
                    key,
                    salt,
                    contents: Contents::new(),
                });
            }
            Err(e) => {
                return Err(VaultError::Io(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let (m, t, p, salt) = header(&bytes, path)?;
        let key =
            derive(passphrase, &salt, m, t, p).map_err(|_| VaultError::NotAVault(path.into()))?;
        let contents = open(&bytes, &key, path)?;
        Ok(Vault {
            path: path.to_path_buf(),
            key,
            salt,
            contents,
        })
    }

    /// Takes in what another Tributary process (the app beside a command, say) saved since
    /// this one read the file, so that saving never drops a connection it added.
    fn reload(&mut self) -> Result<(), VaultError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(VaultError::Io(format!(
                    "cannot read {}: {e}",
                    self.path.display()
                )));
            }
        };
        let (_, _, _, salt) = header(&bytes, &self.path)?;
        if salt != self.salt {
            return Err(VaultError::Io(format!(
                "{} was made anew by another Tributary since it was unlocked here; unlock it again",
                self.path.display()
            )));
        }
        self.contents = open(&bytes, &self.key, &self.path)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One secret field of a connection.
    pub fn get(&self, connection: &str, field: &str) -> Option<Secret> {
        self.contents
            .get(connection)
            .and_then(|fields| fields.get(field))
            .map(|v| Secret::new(v.clone()))
    }

    /// Sets fields of a connection (others stay) and saves.
    pub fn set(&mut self, connection: &str, fields: &[(&str, &Secret)]) -> Result<(), VaultError> {
        self.reload()?;
        let entry = self.contents.entry(connection.to_string()).or_default();
        for (field, value) in fields {
            entry.insert(field.to_string(), value.expose().to_string());
        }
        self.save()
    }

    /// Forgets all of a connection's secrets and saves.
    pub fn remove(&mut self, connection: &str) -> Result<(), VaultError> {
        self.reload()?;
        if self.contents.remove(connection).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), VaultError> {
        let io = |what: &str, e: std::io::Error| {
            VaultError::Io(format!("cannot {what} {}: {e}", self.path.display()))
        };
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + 256);
        out.extend_from_slice(MAGIC);
        for n in [M_COST_KIB, T_COST, P_COST] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.salt);
        let mut nonce = [0; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let plain = Zeroizing::new(serde_json::to_vec(&self.contents).expect("strings serialize"));
        let sealed = XChaCha20Poly1305::new(self.key.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &out[..HEADER_LEN],
                },
            )
            .map_err(|_| VaultError::Io("encryption failed".into()))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);

        let folder = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(|e| io("create the folder of", e))?;
        let mut file = tempfile::Builder::new()
            .prefix(".vault")
            .permissions(private())
            .tempfile_in(folder)
            .map_err(|e| io("write", e))?;
        file.write_all(&out).map_err(|e| io("write", e))?;
        file.as_file().sync_all().map_err(|e| io("write", e))?;
        file.persist(&self.path)
            .map_err(|e| io("replace", e.error))?;
        Ok(())
    }
}

/// The Argon2 settings and the salt of a vault file.
fn header(bytes: &[u8], path: &Path) -> Result<(u32, u32, u32, [u8; SALT_LEN]), VaultError> {
    if bytes.len() < HEADER_LEN + NONCE_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err(VaultError::NotAVault(path.to_path_buf()));
    }
    let number = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let salt = bytes[20..HEADER_LEN].try_into().unwrap();
    let (m, t, p) = (number(8), number(12), number(16));
    let bad = |what: String| VaultError::BadSettings {
        path: path.to_path_buf(),
        what,
    };
    if !M_COST_KIB_RANGE.contains(&m) {
        return Err(bad(format!(
            "{m} KiB of memory, where 8 MiB to 1 GiB are allowed"
        )));
    }
    if !T_COST_RANGE.contains(&t) {
        return Err(bad(format!("{t} passes, where 1 to 10 are allowed")));
    }
    if !P_COST_RANGE.contains(&p) {
        return Err(bad(format!("{p} lanes, where 1 to 16 are allowed")));
    }
    Ok((m, t, p, salt))
}

/// The contents of a vault file, decrypted with its key.
fn open(bytes: &[u8], key: &[u8; 32], path: &Path) -> Result<Contents, VaultError> {
    let nonce = XNonce::from_slice(&bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
    let plain = XChaCha20Poly1305::new(key.into())
        .decrypt(
            nonce,
            Payload {
                msg: &bytes[HEADER_LEN + NONCE_LEN..],
                aad: &bytes[..HEADER_LEN],
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::WrongPassphrase(path.to_path_buf()))?;
    serde_json::from_slice(&plain).map_err(|_| VaultError::NotAVault(path.to_path_buf()))
}

#[cfg(unix)]
fn private() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

#[cfg(not(unix))]
fn private() -> std::fs::Permissions {
    std::fs::metadata(".").map(|m| m.permissions()).unwrap()
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| VaultError::Io(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| VaultError::Io(e.to_string()))?;
    Ok(key)
}

/// The process's unlocked vaults by file, shared by the app, the CLI and runs: one
/// passphrase prompt and one key derivation per process.
static SHARED: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<Vault>>>>> = OnceLock::new();

fn unlocked() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Arc<Mutex<Vault>>>> {
    SHARED.get_or_init(Default::default).lock().unwrap()
}

/// The installation's vault, unlocked with the passphrase given earlier in this process
/// (`unlock_shared`) or in `TRIBUTARY_VAULT_PASSPHRASE`.
pub fn shared(dirs: &Dirs) -> Result<Arc<Mutex<Vault>>, VaultError> {
    let path = vault_file(dirs);
    if let Some(vault) = unlocked().get(&path) {
        return Ok(vault.clone());
    }
    let passphrase = std::env::var(PASSPHRASE_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or(VaultError::Locked)?;
    unlock_shared(dirs, &passphrase)
}

/// Unlocks the installation's vault with a passphrase the user typed, for the rest of the
/// process.
pub fn unlock_shared(dirs: &Dirs, passphrase: &str) -> Result<Arc<Mutex<Vault>>, VaultError> {
    let path = vault_file(dirs);
    let vault = Arc::new(Mutex::new(Vault::unlock(&path, passphrase)?));
    unlocked().insert(path, vault.clone());
    Ok(vault)
}

/// Whether the vault has been unlocked in this process, or can be from the environment.
pub fn is_unlocked(dirs: &Dirs) -> bool {
    unlocked().contains_key(&vault_file(dirs))
        || std::env::var(PASSPHRASE_VAR).is_ok_and(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_survive_a_reopen_and_are_not_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.bin");
        let mut vault = Vault::unlock(&path, "correct horse").unwrap();
        vault
            .set("crm", &[("refresh_token", &Secret::new("rt-5ecret-value"))])
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(15).any(|w| w == b"rt-5ecret-value"));
        assert!(!bytes.windows(3).any(|w| w == b"crm"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Vault::unlock(&path, "correct horse").unwrap();
        assert_eq!(
            again.get("crm", "refresh_token").unwrap().expose(),
            "rt-5ecret-value"
        );
        assert_eq!(
            Vault::unlock(&path, "wrong horse").unwrap_err(),
            VaultError::WrongPassphrase(path.clone())
        );
    }

    #[test]
    fn key_settings_out_of_bounds_are_refused_before_deriving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.bin");
        let mut vault = Vault::unlock(&path, "pass").unwrap();
        vault.set("a", &[("api_key", &Secret::new("k"))]).unwrap();
        let good = std::fs::read(&path).unwrap();
        // One flipped byte each: 64 GiB of memory, 65,283 passes, 257 lanes. Deriving with
        // any of them would take the machine's memory or minutes; the refusal is instant.
        for (at, byte) in [(11, 0x04), (13, 0xff), (17, 0x01)] {
            let mut bytes = good.clone();
            bytes[at] ^= byte;
            std::fs::write(&path, &bytes).unwrap();
            let started = std::time::Instant::now();
            let Err(err) = Vault::unlock(&path, "pass") else {
                panic!("byte {at}: refused");
            };
            assert!(matches!(err, VaultError::BadSettings { .. }), "{err}");
            assert!(err.to_string().contains("allowed"), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
    }

    #[test]
    fn a_changed_header_fails_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.bin");
        let mut vault = Vault::unlock(&path, "pass").unwrap();
        vault.set("a", &[("api_key", &Secret::new("k"))]).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[25] ^= 1; // a salt byte
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Vault::unlock(&path, "pass"),
            Err(VaultError::WrongPassphrase(_))
        ));
        std::fs::write(&path, b"{}").unwrap();
        assert!(matches!(
            Vault::unlock(&path, "pass"),
            Err(VaultError::NotAVault(_))
        ));
    }

    #[test]
    fn a_save_keeps_what_another_process_saved_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.bin");
        let mut app = Vault::unlock(&path, "pass").unwrap();
        app.set("crm", &[("refresh_token", &Secret::new("r1"))])
            .unwrap();
        // A command in a terminal adds a connection while the app holds the vault open.
        let mut command = Vault::unlock(&path, "pass").unwrap();
        command
            .set("billing", &[("api_key", &Secret::new("k"))])
            .unwrap();
        app.set("crm", &[("refresh_token", &Secret::new("r2"))])
            .unwrap();
        let now = Vault::unlock(&path, "pass").unwrap();
        assert_eq!(now.get("billing", "api_key").unwrap().expose(), "k");
        assert_eq!(now.get("crm", "refresh_token").unwrap().expose(), "r2");
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
    }
}
