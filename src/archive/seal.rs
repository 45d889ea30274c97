//! Encryption at rest: backup files sealed with age (X25519 recipients).
//!
//! A sealed file is the gzip file encrypted whole, in age's 64 KiB
//! authenticated chunks, and named with [`SUFFIX`] (`x.tar.gz.age`): anyone
//! can check its sha256 (SHA256SUMS covers the sealed bytes), only a holder
//! of an identity can read it, and `age -d -i KEY x.tar.gz.age | tar xz`
//! opens it without berth. Whether a file is sealed is read from its name,
//! never guessed from its bytes.
//!
//! This module is the only one that touches key material. A secret key is
//! held as age's own type (wiped when dropped), has no `Serialize`, prints
//! as a count in `Debug`, and no error here quotes a line of a key file:
//! only the file's name and the line's number.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519;

use crate::error::{Error, Kind, Result};

/// The name a sealed file gets after its plain name.
pub const SUFFIX: &str = ".age";

/// Key and recipient files are a few lines: past this, it is not one.
const KEY_FILE_MAX: u64 = 1 << 20;

/// What every age X25519 public key starts with.
const RECIPIENT_PREFIX: &str = "age1";
/// What every age X25519 secret key starts with.
const SECRET_PREFIX: &str = "AGE-SECRET-KEY-";

/// Whether the file of this name is sealed.
pub fn is_sealed(name: &str) -> bool {
    name.ends_with(SUFFIX)
}

/// The name of `plain` once sealed (unchanged when not sealing).
pub fn sealed_name(plain: &str, sealing: bool) -> String {
    if sealing {
        format!("{plain}{SUFFIX}")
    } else {
        plain.to_owned()
    }
}

/// The recipients named by `--encrypt-to` arguments, each an age X25519
/// public key (`age1...`) or a file of them (one a line, `#` comments);
/// checked and in order, without duplicates.
pub fn recipients(args: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = vec![];
    for arg in args {
        for r in recipients_of(arg)? {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

fn recipients_of(arg: &str) -> Result<Vec<String>> {
    if arg.starts_with(SECRET_PREFIX) {
        // Never repeat it: it is a secret given in the wrong place.
        return Err(Error::usage(
            "--encrypt-to was given a secret key (AGE-SECRET-KEY-...): give its public key (age1..., `age-keygen -y FILE` prints it) and keep the secret key off the command line",
        ));
    }
    if arg.starts_with(RECIPIENT_PREFIX) {
        return parse_recipient(arg).map(|r| vec![r]).ok_or_else(|| {
            Error::usage(format!(
                "--encrypt-to {arg}: not a valid age X25519 recipient"
            ))
        });
    }
    let path = Path::new(arg);
    let what = format!("--encrypt-to {}", path.display());
    let lines = key_file_lines(path, &what)?;
    let mut out = vec![];
    for (n, line) in lines {
        let r = parse_recipient(&line).ok_or_else(|| {
            Error::usage(format!(
                "{what}: line {n} is not an age X25519 recipient (age1...)"
            ))
        })?;
        out.push(r);
    }
    if out.is_empty() {
        return Err(Error::usage(format!("{what}: the file names no recipient")));
    }
    Ok(out)
}

/// The canonical text of a recipient, if `s` is one.
fn parse_recipient(s: &str) -> Option<String> {
    x25519::Recipient::from_str(s.trim())
        .ok()
        .map(|r| r.to_string())
}

/// The lines of a key or recipient file that hold something, with their
/// numbers (from 1): blank lines and `#` comments are skipped. Errors name
/// the file (as `what`), never its content.
fn key_file_lines(path: &Path, what: &str) -> Result<Vec<(usize, String)>> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::usage(format!("{what}: cannot read it ({e})")))?;
    let mut text = String::new();
    BufReader::new(f)
        .take(KEY_FILE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::usage(format!("{what}: cannot read it as text ({})", e.kind())))?;
    if text.len() as u64 > KEY_FILE_MAX {
        return Err(Error::usage(format!(
            "{what}: larger than {KEY_FILE_MAX} bytes: not a key file"
        )));
    }
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| (n, l.to_owned()))
        .collect();
    // The text held secrets: wipe the copy before it is freed.
    zero_string(text);
    Ok(lines)
}

fn zero_string(s: String) {
    let mut bytes = s.into_bytes();
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
}

/// Secret keys that open sealed files (`--identity FILE`, the run's own).
#[derive(Clone, Default)]
pub struct Keys {
    ids: Vec<x25519::Identity>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} identities)", self.ids.len())
    }
}

impl Keys {
    /// No key: only plain files open.
    pub fn none() -> Keys {
        Keys::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The identities of an age identity file (as `age-keygen` writes it:
    /// `AGE-SECRET-KEY-1...` lines, `#` comments).
    pub fn load(path: &Path) -> Result<Keys> {
        let what = format!("--identity {}", path.display());
        let mut ids = vec![];
        for (n, mut line) in key_file_lines(path, &what)? {
            let id = x25519::Identity::from_str(&line);
            zero_string(std::mem::take(&mut line));
            ids.push(id.map_err(|_| {
                Error::usage(format!(
                    "{what}: line {n} is not an age X25519 identity (AGE-SECRET-KEY-1...)"
                ))
            })?);
        }
        if ids.is_empty() {
            return Err(Error::usage(format!("{what}: the file holds no identity")));
        }
        Ok(Keys { ids })
    }

    /// The identities of every file given, in order.
    pub fn load_all(paths: &[PathBuf]) -> Result<Keys> {
        let mut keys = Keys::none();
        for p in paths {
            keys.add(Keys::load(p)?);
        }
        Ok(keys)
    }

    pub fn add(&mut self, other: Keys) {
        self.ids.extend(other.ids);
    }

    fn dyn_ids(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.ids.iter().map(|i| i as &dyn age::Identity)
    }
}

/// A new X25519 identity written to `path` (mode 0600, which must not
/// exist yet) as an age identity file; its public key.
pub fn new_identity_file(path: &Path) -> Result<String> {
    let id = x25519::Identity::generate();
    let public = id.to_public().to_string();
    let secret = id.to_string();
    let text = format!(
        "# berth: a key of one upgrade run, removed when the run ends\n# public key: {public}\n{}\n",
        secret.expose_secret()
    );
    let mut f = crate::files::create_new(path, 0o600)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    zero_string(text);
    if let Err(e) = written {
        // Half a key is no key: leave nothing behind.
        let _ = std::fs::remove_file(path);
        return Err(Error::failed(format!("writing {}: {e}", path.display())));
    }
    Ok(public)
}

/// The public keys of the identities in an identity file.
pub fn public_keys(keys: &Keys) -> Vec<String> {
    keys.ids.iter().map(|i| i.to_public().to_string()).collect()
}

/// A writer that seals what it is given, or passes it through.
/// [`SealWriter::finish`] must be called: it writes the last chunk.
pub enum SealWriter<W: Write> {
    Plain(W),
    Sealed(age::stream::StreamWriter<W>),
}

impl<W: Write> SealWriter<W> {
    /// Seals to `recipients` (age1... keys, as [`recipients`] returns
    /// them); passes through when there are none.
    pub fn new(inner: W, recipients: &[String]) -> Result<Self> {
        if recipients.is_empty() {
            return Ok(SealWriter::Plain(inner));
        }
        let parsed: Vec<x25519::Recipient> = recipients
            .iter()
            .map(|r| {
                x25519::Recipient::from_str(r)
                    .map_err(|_| Error::usage(format!("{r}: not an age X25519 recipient")))
            })
            .collect::<Result<_>>()?;
        let encryptor =
            age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|_| Error::failed("age refused the recipients"))?;
        let w = encryptor
            .wrap_output(inner)
            .map_err(|e| Error::failed(format!("writing the age header: {e}")))?;
        Ok(SealWriter::Sealed(w))
    }

    /// Writes what is left (the last sealed chunk) and gives the inner
    /// writer back, unflushed.
    pub fn finish(self) -> io::Result<W> {
        match self {
            SealWriter::Plain(w) => Ok(w),
            SealWriter::Sealed(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SealWriter::Plain(w) => w.write(buf),
            SealWriter::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SealWriter::Plain(w) => w.flush(),
            SealWriter::Sealed(w) => w.flush(),
        }
    }
}

/// The plain bytes of the file `name`, read from `r`: opened with `keys`
/// when the name says it is sealed. Fails (Integrity) when no key opens it
/// or its header is damaged; a damaged, changed or truncated chunk fails
/// the read that reaches it (Integrity). A sealed file and no key at all:
/// Usage.
pub fn open<R: Read>(r: R, name: &str, keys: &Keys) -> Result<Opened<R>> {
    if !is_sealed(name) {
        return Ok(Opened::Plain(r));
    }
    if keys.is_empty() {
        return Err(no_key(name));
    }
    let d = age::Decryptor::new(r).map_err(|e| header_error(name, e))?;
    let stream = d
        .decrypt(keys.dyn_ids())
        .map_err(|e| header_error(name, e))?;
    Ok(Opened::Sealed(stream))
}

/// The error for a sealed file and no `--identity`.
pub fn no_key(name: &str) -> Error {
    Error::usage(format!(
        "{name} is encrypted: give the identity that opens it with --identity FILE"
    ))
}

/// age's own messages are not used: they come through its translation
/// layer, and say less than this about what to do.
fn header_error(name: &str, e: age::DecryptError) -> Error {
    use age::DecryptError as D;
    let why = match e {
        D::NoMatchingKeys => {
            "none of the identities given opens it (it was encrypted to other keys)".to_owned()
        }
        D::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "it ends inside its age header (truncated)".to_owned()
        }
        D::Io(e) if e.kind() != io::ErrorKind::InvalidData => format!("reading it failed ({e})"),
        D::UnknownFormat => "not an age file, or of a newer age format".to_owned(),
        _ => "its age header is damaged or was changed".to_owned(),
    };
    Error::integrity(format!("{name}: {why}"))
}

/// A reader of plain bytes: passed through, or unsealed chunk by chunk.
pub enum Opened<R: Read> {
    Plain(R),
    Sealed(age::stream::StreamReader<R>),
}

impl<R: Read> Read for Opened<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Opened::Plain(r) => r.read(buf),
            Opened::Sealed(r) => r.read(buf).map_err(chunk_error),
        }
    }
}

/// A chunk that fails authentication or a stream without its last chunk
/// is a damaged file (Integrity); other errors (the disk's) stay as they are.
fn chunk_error(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::new(
            Kind::Integrity,
            "decryption failed: the encrypted file is truncated or was changed",
        )
        .into_io(),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("berth-seal-{name}-{}-{t}", std::process::id()))
    }

    fn key_pair(name: &str) -> (PathBuf, String) {
        let p = temp(name);
        let public = new_identity_file(&p).unwrap();
        (p, public)
    }

    fn seal(data: &[u8], recipients: &[String]) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), recipients).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn unseal(sealed: &[u8], keys: &Keys) -> Result<Vec<u8>> {
        let mut out = vec![];
        open(sealed, "x.tar.gz.age", keys)?
            .read_to_end(&mut out)
            .map_err(Error::from)?;
        Ok(out)
    }

    /// Several chunks of 64 KiB and a partial one.
    fn data() -> Vec<u8> {
        (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_to_each_recipient() {
        let (k1, p1) = key_pair("a");
        let (k2, p2) = key_pair("b");
        let sealed = seal(&data(), &[p1, p2]);
        assert_ne!(&sealed[..], &data()[..]);
        for k in [&k1, &k2] {
            assert_eq!(unseal(&sealed, &Keys::load(k).unwrap()).unwrap(), data());
        }
        // Plain names pass through untouched, keys or not.
        let mut out = vec![];
        open(&b"plain"[..], "x.tar.gz", &Keys::none())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"plain");
        assert!(matches!(
            SealWriter::new(Vec::new(), &[]).unwrap(),
            SealWriter::Plain(_)
        ));
        for k in [k1, k2] {
            std::fs::remove_file(k).unwrap();
        }
    }

    #[test]
    fn wrong_key_truncation_and_flipped_bytes_are_integrity_errors() {
        let (k1, p1) = key_pair("right");
        let (k2, _) = key_pair("wrong");
        let (right, wrong) = (Keys::load(&k1).unwrap(), Keys::load(&k2).unwrap());
        let sealed = seal(&data(), &[p1]);
        let e = unseal(&sealed, &wrong).unwrap_err();
        assert_eq!(e.kind, Kind::Integrity, "{e}");
        assert!(e.msg.contains("none of the identities"), "{e}");
        // Cut at a chunk boundary (the stream then lacks its last chunk),
        // inside a chunk, and inside the header.
        let header = sealed.len() - (data().len() + 5 * 16);
        for cut in [header + 65_536 + 16, sealed.len() - 1, 20] {
            let e = unseal(&sealed[..cut], &right).unwrap_err();
            assert_eq!(e.kind, Kind::Integrity, "cut at {cut}: {e}");
        }
        // One flipped byte: in the header, in the first and the last chunk.
        for at in [40, header + 10, sealed.len() - 3] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            let e = unseal(&bad, &right).unwrap_err();
            assert_eq!(e.kind, Kind::Integrity, "flipped at {at}: {e}");
        }
        let e = unseal(&sealed, &Keys::none()).unwrap_err();
        assert_eq!(e.kind, Kind::Usage, "{e}");
        for k in [k1, k2] {
            std::fs::remove_file(k).unwrap();
        }
    }

    #[test]
    fn identity_files_and_no_secret_in_errors() {
        let (k, public) = key_pair("file");
        let text = std::fs::read_to_string(&k).unwrap();
        let secret = text.lines().find(|l| l.starts_with(SECRET_PREFIX)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let keys = Keys::load(&k).unwrap();
        assert_eq!(public_keys(&keys), vec![public.clone()]);
        assert!(!format!("{keys:?}").contains(secret));
        // A damaged line: the error names its number, not its text.
        let bad = temp("bad");
        std::fs::write(&bad, format!("# c\n\n{secret}\n{}X\n", &secret[..40])).unwrap();
        let e = Keys::load(&bad).unwrap_err();
        assert!(e.msg.contains("line 4"), "{e}");
        assert!(!e.msg.contains(&secret[..20]), "{e}");
        std::fs::write(&bad, "# only comments\n").unwrap();
        assert!(Keys::load(&bad).unwrap_err().msg.contains("no identity"));
        // A secret key given as a recipient is refused without being repeated.
        let e = recipients(&[secret.to_owned()]).unwrap_err();
        assert!(!e.msg.contains(&secret[..20]), "{e}");
        // Recipients: keys and files, duplicates once.
        std::fs::write(&bad, format!("# team\n{public}\n\n")).unwrap();
        let got = recipients(&[public.clone(), bad.display().to_string()]).unwrap();
        assert_eq!(got, vec![public.clone()]);
        std::fs::write(&bad, format!("{public}\nnot-a-key\n")).unwrap();
        let e = recipients(&[bad.display().to_string()]).unwrap_err();
        assert!(
            e.msg.contains("line 2") && !e.msg.contains("not-a-key"),
            "{e}"
        );
        assert!(recipients(&["age1nope".into()]).is_err());
        assert!(recipients(&["/nonexistent/berth-recipients".into()]).is_err());
        for p in [k, bad] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn names() {
        assert!(is_sealed("a.tar.gz.age") && !is_sealed("a.tar.gz"));
        assert_eq!(sealed_name("a.index.gz", true), "a.index.gz.age");
        assert_eq!(sealed_name("a.index.gz", false), "a.index.gz");
    }
}
