//! The key file of the embedded default: `DIR/encryption.keys`, mode 0600, one base64 key per
//! line, the LAST line being the current key (older lines decrypt only). Generated on first use.
//! Rotation appends a new key; after everything is re-encrypted, [`drop_older`] keeps only it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{decode_key, encode_key, generate_key, CryptoError, Keyring};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {source}")]
    Key {
        path: String,
        line: usize,
        source: CryptoError,
    },
    #[error("{path} holds no key")]
    Empty { path: String },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Keys of the file, oldest first.
fn read_keys(path: &Path) -> Result<Vec<[u8; 32]>, KeyFileError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        keys.push(decode_key(line).map_err(|source| KeyFileError::Key {
            path: path.display().to_string(),
            line: i + 1,
            source,
        })?);
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(keys)
}

fn keyring(keys: &[[u8; 32]]) -> Keyring {
    let (current, older) = keys.split_last().expect("non-empty");
    Keyring::new(current, older)
}

/// Writes `keys` to `path` atomically (temporary file with mode 0600, then rename).
fn write_keys(path: &Path, keys: &[[u8; 32]]) -> Result<(), KeyFileError> {
    let tmp = path.with_extension("keys.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let mut text = String::from(
        "# Zixly token encryption keys: the last line is current. Keep this file secret.\n",
    );
    for k in keys {
        text.push_str(&encode_key(k));
        text.push('\n');
    }
    file.write_all(text.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Loads the keyring from `path`, creating the file with one fresh key when it does not exist.
pub fn load_or_create(path: &Path) -> Result<Keyring, KeyFileError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(keyring(&read_keys(path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key();
            write_keys(path, &[key])?;
            Ok(Keyring::new(&key, &[]))
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Appends a new current key; the previous keys stay for decryption. Returns the new keyring.
pub fn add_key(path: &Path) -> Result<Keyring, KeyFileError> {
    let mut keys = read_keys(path)?;
    keys.push(generate_key());
    write_keys(path, &keys)?;
    Ok(keyring(&keys))
}

/// Keeps only the current key (call after every ciphertext was re-encrypted).
pub fn drop_older(path: &Path) -> Result<(), KeyFileError> {
    let keys = read_keys(path)?;
    write_keys(path, &keys[keys.len() - 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_0600_then_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.keys");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.current_key_id(), again.current_key_id());
        let ct = first.encrypt(b"tok", b"a");

        let rotated = add_key(&path).unwrap();
        assert_ne!(rotated.current_key_id(), first.current_key_id());
        let new_ct = rotated.reencrypt(&ct, b"a").unwrap();
        drop_older(&path).unwrap();
        let after = load_or_create(&path).unwrap();
        assert_eq!(after.current_key_id(), rotated.current_key_id());
        assert_eq!(after.decrypt(&new_ct, b"a").unwrap(), b"tok");
        assert!(after.decrypt(&ct, b"a").is_err());
    }

    #[test]
    fn refuses_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.keys");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Permissions { .. })
        ));
    }
}
