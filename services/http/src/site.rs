//! What the server serves: a fixed body for every path, or a directory tree
//! looked up by a sanitized path.
//!
//! Requests never walk the file system: the tree's names are read once (at
//! start, and again on SIGHUP), and a path can only name what was found
//! under the root. Small files are held in memory; files larger than
//! `--max-file-in-memory` (or past the `--max-root-bytes` budget) are kept
//! open and read in chunks as they are sent. The sanitizer still refuses
//! what would climb out (`..` after percent-decoding, NUL, a target that is
//! not absolute), so such requests get 400 rather than a lookup.
//!
//! Each file is a representation with its validators (a strong `ETag` from
//! its modification time and size, as nginx writes it, and
//! `Last-Modified`); `file.br` and `file.gz` beside a file are its
//! precompressed variants, representations of their own (the same media
//! type, a `Content-Encoding`, an entity tag of their own).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::encoding::Coding;
use crate::head;

/// The fixed body with its precomputed `Content-Type` and `Content-Length`
/// header lines.
#[derive(Debug)]
pub struct Body {
    /// The bytes.
    pub data: Box<[u8]>,
    /// `Content-Type: ...\r\nContent-Length: ...\r\n`.
    pub header: Box<[u8]>,
    /// The media type.
    pub content_type: &'static str,
}

impl Body {
    /// A body of type `content_type`.
    pub fn new(data: Vec<u8>, content_type: &'static str) -> Self {
        Body {
            header: content_header(content_type, data.len() as u64),
            data: data.into_boxed_slice(),
            content_type,
        }
    }
}

fn content_header(content_type: &str, len: u64) -> Box<[u8]> {
    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(b"Content-Type: ");
    header.extend_from_slice(content_type.as_bytes());
    header.extend_from_slice(b"\r\nContent-Length: ");
    header.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    header.extend_from_slice(b"\r\n");
    header.into_boxed_slice()
}

/// Where a file's bytes are.
#[derive(Debug)]
pub enum Blob {
    /// Read into memory.
    Mem(Box<[u8]>),
    /// Kept open (the file as it was opened at load: a file replaced by a
    /// rename is served as it was until the next reload).
    Disk {
        /// The open file.
        file: File,
        /// Its size at load.
        len: u64,
    },
}

impl Blob {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Blob::Mem(d) => d.len() as u64,
            Blob::Disk { len, .. } => *len,
        }
    }

    /// Empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when in memory.
    pub fn mem(&self) -> Option<&[u8]> {
        match self {
            Blob::Mem(d) => Some(d),
            Blob::Disk { .. } => None,
        }
    }

    /// Reads from `off` into `buf` (pread, no shared offset: every worker
    /// reads the same open file). In memory: a copy.
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        match self {
            Blob::Mem(d) => {
                let from = (off.min(d.len() as u64)) as usize;
                let n = buf.len().min(d.len() - from);
                buf[..n].copy_from_slice(&d[from..from + n]);
                Ok(n)
            }
            Blob::Disk { file, .. } => file.read_at(buf, off),
        }
    }
}

/// One representation of a file: the file itself or a precompressed
/// variant of it.
#[derive(Debug)]
pub struct Repr {
    /// Index of its bytes in the tree's blobs.
    pub blob: u32,
    /// Size in bytes.
    pub len: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// The media type (a variant has its file's).
    pub content_type: &'static str,
    /// Its content coding.
    pub coding: Coding,
    /// `Content-Type: ...\r\nContent-Length: ...\r\n` for the whole.
    pub header: Box<[u8]>,
    /// `Content-Type: ...\r\n` alone.
    pub type_line: Box<[u8]>,
    /// `ETag: "..."\r\nLast-Modified: ...\r\n`.
    pub validators: Box<[u8]>,
    /// The entity tag's length in `validators` after `ETag: ` (quotes
    /// included).
    etag_len: u8,
    /// Its variants (the file itself only): `file.br`, `file.gz`.
    pub br: Option<u32>,
    /// See `br`.
    pub gzip: Option<u32>,
}

impl Repr {
    fn new(blob: u32, len: u64, mtime: u64, content_type: &'static str, coding: Coding) -> Repr {
        // nginx's form: hex seconds, hex size; a variant's says which it
        // is, so that it never equals its file's.
        let mut etag = format!("\"{mtime:x}-{len:x}");
        if coding != Coding::Identity {
            etag.push('-');
            etag.push_str(coding.suffix());
        }
        etag.push('"');
        let mut validators = Vec::with_capacity(64);
        validators.extend_from_slice(b"ETag: ");
        validators.extend_from_slice(etag.as_bytes());
        validators.extend_from_slice(b"\r\nLast-Modified: ");
        validators.extend_from_slice(&head::http_date(mtime));
        validators.extend_from_slice(b"\r\n");
        let mut type_line = Vec::with_capacity(48);
        type_line.extend_from_slice(b"Content-Type: ");
        type_line.extend_from_slice(content_type.as_bytes());
        type_line.extend_from_slice(b"\r\n");
        Repr {
            blob,
            len,
            mtime,
            content_type,
            coding,
            header: content_header(content_type, len),
            type_line: type_line.into_boxed_slice(),
            validators: validators.into_boxed_slice(),
            etag_len: etag.len() as u8,
            br: None,
            gzip: None,
        }
    }

    /// The entity tag, quotes included.
    pub fn etag(&self) -> &[u8] {
        &self.validators[6..6 + self.etag_len as usize]
    }

    /// It has a precompressed variant: its responses say `Vary:
    /// Accept-Encoding`.
    pub fn has_variants(&self) -> bool {
        self.br.is_some() || self.gzip.is_some()
    }
}

/// One name in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// A file: index into `Tree::reprs` (the file itself).
    File(u32),
    /// A directory and its `index.html`, if any.
    Dir(Option<u32>),
}

/// What a path resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Serve this representation (see [`Tree::repr`]).
    Found(u32),
    /// A directory named without its trailing slash: redirect (301) to the
    /// same path with one.
    AddSlash,
    /// 404.
    NotFound,
}

/// What the server serves.
#[derive(Debug)]
pub enum Site {
    /// The same body for every path.
    Fixed(Body),
    /// A directory tree.
    Tree(Tree),
}

impl Site {
    /// The bytes with index `i`: the fixed body is index 0, a tree's blobs
    /// are its files.
    pub fn blob(&self, i: u32) -> Option<BlobRef<'_>> {
        match self {
            Site::Fixed(b) => (i == 0).then_some(BlobRef::Mem(&b.data)),
            Site::Tree(t) => t.blobs.get(i as usize).map(|b| match b {
                Blob::Mem(d) => BlobRef::Mem(d),
                Blob::Disk { .. } => BlobRef::Blob(b),
            }),
        }
    }
}

/// Bytes to send: a slice, or a file to read.
#[derive(Clone, Copy, Debug)]
pub enum BlobRef<'a> {
    /// In memory.
    Mem(&'a [u8]),
    /// To be read (a [`Blob::Disk`]).
    Blob(&'a Blob),
}

/// Limits on what a tree holds in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadLimits {
    /// Bytes of files held in memory in all (the smallest files first);
    /// the rest are read from their files.
    pub max_bytes: u64,
    /// Files larger than this are never held in memory.
    pub max_file: u64,
}

impl LoadLimits {
    /// Everything up to `max_bytes` in memory (files of any size).
    pub fn memory(max_bytes: u64) -> Self {
        LoadLimits {
            max_bytes,
            max_file: max_bytes,
        }
    }
}

/// A directory tree.
#[derive(Debug, Default)]
pub struct Tree {
    entries: HashMap<Box<[u8]>, Entry>,
    reprs: Vec<Repr>,
    blobs: Vec<Blob>,
    /// Bytes held in memory.
    bytes: u64,
    /// Files read from disk, and their bytes.
    disk_files: usize,
    disk_bytes: u64,
}

/// Why a tree could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The root is not a directory.
    #[error("--root {0}: not a directory")]
    NotADir(String),
    /// A read failed.
    #[error("--root: cannot read {0}: {1}")]
    Io(String, std::io::Error),
    /// Too many names.
    #[error("--root {root} holds more than {limit} files and directories")]
    TooManyFiles {
        /// The root.
        root: String,
        /// The limit.
        limit: usize,
    },
    /// Out of file descriptors (one per file served from disk).
    #[error("--root: cannot open {0}: too many open files ({1} files from disk so far, one descriptor each): raise `ulimit -n`")]
    Descriptors(String, usize),
    /// The access log cannot be opened.
    #[error("--access-log {0}: {1}")]
    Log(String, std::io::Error),
}

/// Most files and directories loaded from a root.
pub const MAX_ENTRIES: usize = 1_000_000;

/// A file found under the root.
struct Found {
    key: Vec<u8>,
    path: PathBuf,
    len: u64,
}

impl Tree {
    /// Loads every regular file under `root` (following symbolic links only
    /// when they stay inside the root): files up to `limits.max_file`, the
    /// smallest first, into memory while they fit `limits.max_bytes`; the
    /// others are opened and kept open.
    pub fn load(root: &Path, limits: LoadLimits) -> Result<Tree, SiteError> {
        let show = |p: &Path| p.display().to_string();
        let root_c = fs::canonicalize(root).map_err(|e| SiteError::Io(show(root), e))?;
        if !root_c.is_dir() {
            return Err(SiteError::NotADir(show(root)));
        }
        // First the names and sizes (to choose what goes into memory), then
        // the contents.
        let mut files: Vec<Found> = Vec::new();
        let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut seen_dirs: HashSet<PathBuf> = HashSet::from([root_c.clone()]);
        let mut stack: Vec<(Vec<u8>, PathBuf)> = vec![(Vec::new(), root_c.clone())];
        while let Some((key, dir)) = stack.pop() {
            let rd = fs::read_dir(&dir).map_err(|e| SiteError::Io(show(&dir), e))?;
            for ent in rd {
                let ent = ent.map_err(|e| SiteError::Io(show(&dir), e))?;
                let path = ent.path();
                let name = ent.file_name();
                let mut child = key.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(name.as_bytes());
                let lmeta =
                    fs::symlink_metadata(&path).map_err(|e| SiteError::Io(show(&path), e))?;
                let (real, meta) = if lmeta.file_type().is_symlink() {
                    let Ok(real) = fs::canonicalize(&path) else {
                        log::warn!("--root: skipping dangling link {}", path.display());
                        continue;
                    };
                    if !real.starts_with(&root_c) {
                        log::warn!(
                            "--root: skipping {} (links outside the root)",
                            path.display()
                        );
                        continue;
                    }
                    let meta = fs::metadata(&real).map_err(|e| SiteError::Io(show(&real), e))?;
                    (real, meta)
                } else {
                    (path.clone(), lmeta)
                };
                if files.len() + dirs.len() >= MAX_ENTRIES {
                    return Err(SiteError::TooManyFiles {
                        root: show(root),
                        limit: MAX_ENTRIES,
                    });
                }
                if meta.is_dir() {
                    if seen_dirs.insert(real.clone()) {
                        dirs.push(child.clone());
                        stack.push((child, real));
                    }
                } else if meta.is_file() {
                    files.push(Found {
                        key: child,
                        path: real,
                        len: meta.len(),
                    });
                }
                // Sockets, FIFOs, devices: never served (reading a FIFO
                // would block).
            }
        }
        // Memory for the smallest files first: the most requests per byte.
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| files[i].len);
        let mut in_mem = vec![false; files.len()];
        let mut budget = limits.max_bytes;
        for i in order {
            let len = files[i].len;
            if len > limits.max_file || len > budget {
                break;
            }
            budget -= len;
            in_mem[i] = true;
        }
        let mut tree = Tree::default();
        for (f, mem) in files.into_iter().zip(in_mem) {
            let mut file = File::open(&f.path).map_err(|e| {
                if e.raw_os_error() == Some(libc::EMFILE) {
                    SiteError::Descriptors(show(&f.path), tree.disk_files)
                } else {
                    SiteError::Io(show(&f.path), e)
                }
            })?;
            // The size and time of what was opened (not of the name walked).
            let meta = file
                .metadata()
                .map_err(|e| SiteError::Io(show(&f.path), e))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let blob = if mem {
                let mut data = Vec::with_capacity(meta.len() as usize);
                file.read_to_end(&mut data)
                    .map_err(|e| SiteError::Io(show(&f.path), e))?;
                tree.bytes += data.len() as u64;
                Blob::Mem(data.into_boxed_slice())
            } else {
                tree.disk_files += 1;
                tree.disk_bytes += meta.len();
                Blob::Disk {
                    file,
                    len: meta.len(),
                }
            };
            let ct = content_type(&f.key);
            let b = tree.blobs.len() as u32;
            let len = blob.len();
            tree.blobs.push(blob);
            let idx = tree.reprs.len() as u32;
            tree.reprs
                .push(Repr::new(b, len, mtime, ct, Coding::Identity));
            tree.entries
                .insert(f.key.into_boxed_slice(), Entry::File(idx));
        }
        // Precompressed variants: `x.br` / `x.gz` beside a file `x`, as
        // representations of `x` (`x.gz` stays a file of its own too).
        let names: Vec<(Box<[u8]>, u32)> = tree
            .entries
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::File(i) => Some((k.clone(), *i)),
                Entry::Dir(_) => None,
            })
            .collect();
        for (key, idx) in names {
            for coding in [Coding::Br, Coding::Gzip] {
                let mut vkey = key.to_vec();
                vkey.push(b'.');
                vkey.extend_from_slice(coding.suffix().as_bytes());
                let Some(&Entry::File(v)) = tree.entries.get(vkey.as_slice()) else {
                    continue;
                };
                let (blob, len, mtime) = {
                    let r = &tree.reprs[v as usize];
                    (r.blob, r.len, r.mtime)
                };
                let ct = tree.reprs[idx as usize].content_type;
                let vi = tree.reprs.len() as u32;
                tree.reprs.push(Repr::new(blob, len, mtime, ct, coding));
                let r = &mut tree.reprs[idx as usize];
                match coding {
                    Coding::Br => r.br = Some(vi),
                    _ => r.gzip = Some(vi),
                }
            }
        }
        for d in dirs {
            let mut index_key = d.clone();
            if !index_key.is_empty() {
                index_key.push(b'/');
            }
            index_key.extend_from_slice(b"index.html");
            let index = match tree.entries.get(index_key.as_slice()) {
                Some(Entry::File(i)) => Some(*i),
                _ => None,
            };
            tree.entries.insert(d.into_boxed_slice(), Entry::Dir(index));
        }
        Ok(tree)
    }

    /// Files loaded.
    pub fn files(&self) -> usize {
        self.blobs.len()
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Files served from disk, and their bytes.
    pub fn on_disk(&self) -> (usize, u64) {
        (self.disk_files, self.disk_bytes)
    }

    /// Representation `i`.
    pub fn repr(&self, i: u32) -> Option<&Repr> {
        self.reprs.get(i as usize)
    }

    /// Blob `i`.
    pub fn blob(&self, i: u32) -> Option<&Blob> {
        self.blobs.get(i as usize)
    }

    /// Resolve a normalized path (see [`normalize`]).
    pub fn resolve(&self, key: &[u8], trailing_slash: bool) -> Resolved {
        match self.entries.get(key) {
            Some(Entry::File(i)) if !trailing_slash => Resolved::Found(*i),
            Some(Entry::File(_)) => Resolved::NotFound,
            Some(Entry::Dir(_)) if !trailing_slash => Resolved::AddSlash,
            Some(Entry::Dir(Some(i))) => Resolved::Found(*i),
            Some(Entry::Dir(None)) | None => Resolved::NotFound,
        }
    }
}

/// A request target turned into a lookup key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The path part of the target as sent (no query), for redirects.
    pub raw_path: &'a str,
    /// The query, with its `?`, or "".
    pub query: &'a str,
    /// The decoded path ended with `/` (or was `/`).
    pub trailing_slash: bool,
}

/// Why a target was refused (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not `/...` (nor `http://host/...`).
    #[error("the target is not an absolute path")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding")]
    BadEscape,
    /// A NUL byte after decoding.
    #[error("NUL in the path")]
    Nul,
    /// A `..` segment after decoding.
    #[error("`..` in the path")]
    DotDot,
}

/// Turns a request target into the key of a name under the root: `out`
/// gets the decoded segments joined by `/`, without `.` and empty segments
/// and without a leading slash (`""` is the root). A query is dropped; an
/// absolute-form target (`http://host/p`) is reduced to its path.
pub fn normalize<'a>(target: &'a str, out: &mut Vec<u8>) -> Result<Normalized<'a>, PathError> {
    out.clear();
    let mut path = target;
    for scheme in ["http://", "https://"] {
        // Compare bytes: a target may hold UTF-8, and slicing the str at
        // `scheme.len()` could cut a character in two.
        let prefix = path.as_bytes().get(..scheme.len());
        if prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes())) {
            let rest = &path[scheme.len()..];
            path = rest.find('/').map_or("/", |i| &rest[i..]);
            break;
        }
    }
    let (path, query) = match path.find(['?', '#']) {
        Some(i) if path.as_bytes()[i] == b'?' => {
            let q = &path[i..];
            (&path[..i], q.find('#').map_or(q, |j| &q[..j]))
        }
        Some(i) => (&path[..i], ""),
        None => (path, ""),
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Decode first, then split: an encoded slash separates segments too, so
    // `%2e%2e%2f` is a `..` segment like `../`. Decoded into `out`, then the
    // segments are compacted in place (no allocation per request).
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) else {
                return Err(PathError::BadEscape);
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(PathError::Nul);
    }
    let trailing_slash = out.last() == Some(&b'/');
    let len = out.len();
    let (mut r, mut w) = (0, 0);
    while r < len {
        let e = out[r..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(len, |p| r + p);
        match &out[r..e] {
            b"" | b"." => {}
            b".." => return Err(PathError::DotDot),
            _ => {
                // w <= r always: the kept bytes never outrun the read ones.
                if w > 0 {
                    out[w] = b'/';
                    w += 1;
                }
                out.copy_within(r..e, w);
                w += e - r;
            }
        }
        r = e + 1;
    }
    out.truncate(w);
    Ok(Normalized {
        raw_path: path,
        query,
        trailing_slash,
    })
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The media type of a file, by the extension of its name (case
/// insensitive); `application/octet-stream` when unknown.
pub fn content_type(name: &[u8]) -> &'static str {
    let base = name.rsplit(|&c| c == b'/').next().unwrap_or(name);
    let Some(dot) = base.iter().rposition(|&c| c == b'.') else {
        return "application/octet-stream";
    };
    let ext = &base[dot + 1..];
    if ext.len() > 8 {
        return "application/octet-stream";
    }
    let mut lower = [0u8; 8];
    for (d, s) in lower.iter_mut().zip(ext) {
        *d = s.to_ascii_lowercase();
    }
    match &lower[..ext.len()] {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"json" | b"map" => "application/json",
        b"txt" | b"text" | b"log" => "text/plain; charset=utf-8",
        b"md" => "text/markdown; charset=utf-8",
        b"csv" => "text/csv; charset=utf-8",
        b"xml" => "application/xml",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"ico" => "image/vnd.microsoft.icon",
        b"bmp" => "image/bmp",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        b"pdf" => "application/pdf",
        b"wasm" => "application/wasm",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"tar" => "application/x-tar",
        b"mp3" => "audio/mpeg",
        b"ogg" => "audio/ogg",
        b"wav" => "audio/wav",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: &str) -> Result<(String, bool), PathError> {
        let mut out = Vec::new();
        let n = normalize(t, &mut out)?;
        Ok((String::from_utf8_lossy(&out).into_owned(), n.trailing_slash))
    }

    #[test]
    fn plain_paths() {
        assert_eq!(norm("/"), Ok(("".into(), true)));
        // Multi-byte characters where a scheme would end: no panic.
        assert!(norm("/abcde€").is_ok());
        assert!(norm("/abcdef€x").is_ok());
        assert_eq!(norm("/a/b.html"), Ok(("a/b.html".into(), false)));
        assert_eq!(norm("/a/b/"), Ok(("a/b".into(), true)));
        assert_eq!(norm("//a//./b"), Ok(("a/b".into(), false)));
        assert_eq!(norm("/a/b?x=1&y=/../.."), Ok(("a/b".into(), false)));
        assert_eq!(norm("/a#frag/../.."), Ok(("a".into(), false)));
        assert_eq!(norm("http://example.com/x/y?q"), Ok(("x/y".into(), false)));
        assert_eq!(norm("HTTP://example.com"), Ok(("".into(), true)));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(norm("/a%20b"), Ok(("a b".into(), false)));
        assert_eq!(norm("/%41%62%2F%63"), Ok(("Ab/c".into(), false)));
        assert_eq!(norm("/caf%C3%A9"), Ok(("café".into(), false)));
        assert_eq!(norm("/100%25"), Ok(("100%".into(), false)));
        // Decoded once only: %2525 is "%25", not "%".
        assert_eq!(norm("/%2525"), Ok(("%25".into(), false)));
        for bad in ["/%", "/%4", "/%zz", "/a%g0", "/%%41"] {
            assert_eq!(norm(bad), Err(PathError::BadEscape), "{bad}");
        }
    }

    #[test]
    fn escapes_are_refused() {
        for t in [
            "/../../etc/passwd",
            "/a/../../etc/passwd",
            "/..",
            "/a/..",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/etc/passwd",
            "/a%2f..%2f..%2fetc%2fpasswd",
            "/..%2f..%2fetc/passwd",
            "http://h/../etc/passwd",
        ] {
            assert_eq!(norm(t), Err(PathError::DotDot), "{t}");
        }
        assert_eq!(norm("/a%00b"), Err(PathError::Nul));
        assert_eq!(norm("etc/passwd"), Err(PathError::NotAbsolute));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
        // Dots that are not a whole segment are names.
        assert_eq!(norm("/..a/b..c/..."), Ok(("..a/b..c/...".into(), false)));
    }

    #[test]
    fn content_types() {
        for (path, want) in [
            ("index.html", "text/html; charset=utf-8"),
            ("dir/INDEX.HTM", "text/html; charset=utf-8"),
            ("a/b/app.js", "text/javascript; charset=utf-8"),
            ("s.css", "text/css; charset=utf-8"),
            ("x.PNG", "image/png"),
            ("x.jpeg", "image/jpeg"),
            ("x.svg", "image/svg+xml"),
            ("x.json", "application/json"),
            ("x.txt", "text/plain; charset=utf-8"),
            ("x.wasm", "application/wasm"),
            ("x.woff2", "font/woff2"),
            ("README", "application/octet-stream"),
            ("x.unknownext", "application/octet-stream"),
            ("dir.html/file", "application/octet-stream"),
            (".html", "text/html; charset=utf-8"),
        ] {
            assert_eq!(content_type(path.as_bytes()), want, "{path}");
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "xdpstack-site-{}-{tag}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn load_and_resolve_a_tree() {
        let d = temp_dir("tree");
        let outside = temp_dir("outside");
        fs::write(outside.join("secret"), b"secret").unwrap();
        fs::write(d.join("index.html"), b"<h1>root</h1>").unwrap();
        fs::create_dir_all(d.join("docs/sub")).unwrap();
        fs::write(d.join("docs/a.txt"), b"aaa").unwrap();
        fs::write(d.join("docs/sub/index.html"), b"sub").unwrap();
        fs::create_dir_all(d.join("empty")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), d.join("leak")).unwrap();
        std::os::unix::fs::symlink(d.join("docs/a.txt"), d.join("alias.txt")).unwrap();
        std::os::unix::fs::symlink(&d, d.join("docs/loop")).unwrap();
        let t = Tree::load(&d, LoadLimits::memory(1 << 20)).unwrap();
        let get = |target: &str| {
            let mut key = Vec::new();
            let n = normalize(target, &mut key).unwrap();
            match t.resolve(&key, n.trailing_slash) {
                Resolved::Found(i) => Ok(String::from_utf8_lossy(&contents(&t, i)).into_owned()),
                other => Err(other),
            }
        };
        assert_eq!(get("/"), Ok("<h1>root</h1>".into()));
        assert_eq!(get("/index.html"), Ok("<h1>root</h1>".into()));
        assert_eq!(get("/docs/a.txt"), Ok("aaa".into()));
        assert_eq!(get("/docs/a.txt/"), Err(Resolved::NotFound));
        assert_eq!(get("/docs/sub/"), Ok("sub".into()));
        assert_eq!(get("/docs/sub"), Err(Resolved::AddSlash));
        assert_eq!(get("/docs/"), Err(Resolved::NotFound)); // no index.html
        assert_eq!(get("/empty/"), Err(Resolved::NotFound));
        assert_eq!(get("/nope"), Err(Resolved::NotFound));
        assert_eq!(get("/leak"), Err(Resolved::NotFound));
        assert_eq!(get("/alias.txt"), Ok("aaa".into()));
        assert_eq!(t.bytes(), 13 + 3 + 3 + 3);
        let idx = match t.resolve(b"docs/a.txt", false) {
            Resolved::Found(i) => i,
            other => panic!("{other:?}"),
        };
        let body = t.repr(idx).unwrap();
        assert_eq!(
            &*body.header,
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        );
        assert!(!body.has_variants());
        let _ = fs::remove_dir_all(&d);
        let _ = fs::remove_dir_all(&outside);
    }

    /// The bytes of representation `i`, read as the server reads them.
    fn contents(t: &Tree, i: u32) -> Vec<u8> {
        let r = t.repr(i).unwrap();
        let b = t.blob(r.blob).unwrap();
        let mut out = vec![0; r.len as usize];
        let mut at = 0;
        while at < out.len() {
            let n = b.read_at(&mut out[at..], at as u64).unwrap();
            assert!(n > 0);
            at += n;
        }
        out
    }

    fn found(t: &Tree, key: &str) -> u32 {
        match t.resolve(key.as_bytes(), false) {
            Resolved::Found(i) => i,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn large_files_stay_on_disk_and_small_ones_fill_the_budget() {
        let d = temp_dir("big");
        fs::write(d.join("a"), vec![1u8; 600]).unwrap();
        fs::write(d.join("b"), vec![2u8; 700]).unwrap();
        fs::write(d.join("c"), vec![3u8; 100]).unwrap();
        fs::write(d.join("huge"), vec![4u8; 5000]).unwrap();
        // Budget 1000, files up to 4096 in memory: c (100) and a (600) fit,
        // b (700) would pass the budget, huge is above the per-file limit.
        let limits = LoadLimits {
            max_bytes: 1000,
            max_file: 4096,
        };
        let t = Tree::load(&d, limits).unwrap();
        assert_eq!(t.files(), 4);
        assert_eq!(t.bytes(), 700);
        assert_eq!(t.on_disk(), (2, 5700));
        for (name, byte, len, mem) in [
            ("a", 1, 600, true),
            ("b", 2, 700, false),
            ("c", 3, 100, true),
            ("huge", 4, 5000, false),
        ] {
            let i = found(&t, name);
            let r = t.repr(i).unwrap();
            assert_eq!(t.blob(r.blob).unwrap().mem().is_some(), mem, "{name}");
            assert_eq!(contents(&t, i), vec![byte; len], "{name}");
        }
        // A read past a disk file's end reads nothing.
        let r = t.repr(found(&t, "huge")).unwrap();
        let mut buf = [0u8; 16];
        let b = t.blob(r.blob).unwrap();
        assert_eq!(b.read_at(&mut buf, 4990).unwrap(), 10);
        assert_eq!(b.read_at(&mut buf, 5000).unwrap(), 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn validators_and_variants() {
        let d = temp_dir("variants");
        fs::write(d.join("app.js"), b"console.log(1)").unwrap();
        fs::write(d.join("app.js.gz"), b"GZ").unwrap();
        fs::write(d.join("app.js.br"), b"BR!").unwrap();
        fs::write(d.join("plain.txt"), b"p").unwrap();
        fs::write(d.join("only.css"), b"css").unwrap();
        fs::write(d.join("only.css.gz"), b"gzipped css").unwrap();
        let t = Tree::load(&d, LoadLimits::memory(1 << 20)).unwrap();
        let js = t.repr(found(&t, "app.js")).unwrap();
        let mtime = js.mtime;
        assert!(mtime > 1_600_000_000, "{mtime}");
        let etag = format!("\"{mtime:x}-e\"");
        assert_eq!(js.etag(), etag.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&js.validators),
            format!(
                "ETag: {etag}\r\nLast-Modified: {}\r\n",
                String::from_utf8_lossy(&head::http_date(mtime))
            )
        );
        assert!(js.has_variants());
        let br = t.repr(js.br.unwrap()).unwrap();
        let gz = t.repr(js.gzip.unwrap()).unwrap();
        assert_eq!((br.coding, gz.coding), (Coding::Br, Coding::Gzip));
        assert_eq!(br.content_type, "text/javascript; charset=utf-8");
        assert_eq!(contents(&t, js.br.unwrap()), b"BR!");
        assert_eq!(contents(&t, js.gzip.unwrap()), b"GZ");
        assert_eq!(br.etag(), format!("\"{:x}-3-br\"", br.mtime).as_bytes());
        assert_eq!(gz.etag(), format!("\"{:x}-2-gz\"", gz.mtime).as_bytes());
        // The variant file is a file of its own as well (its own type, no
        // coding, no variants).
        let own = t.repr(found(&t, "app.js.gz")).unwrap();
        assert_eq!(
            (own.content_type, own.coding, own.has_variants()),
            ("application/gzip", Coding::Identity, false)
        );
        assert_ne!(own.etag(), gz.etag());
        let css = t.repr(found(&t, "only.css")).unwrap();
        assert_eq!((css.br, css.gzip.is_some()), (None, true));
        assert!(!t.repr(found(&t, "plain.txt")).unwrap().has_variants());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn missing_roots_are_refused() {
        let d = temp_dir("missing");
        fs::write(d.join("a"), vec![0u8; 600]).unwrap();
        let limits = LoadLimits::memory(1 << 20);
        let e = Tree::load(&d.join("a"), limits).unwrap_err();
        assert!(matches!(e, SiteError::NotADir(_)), "{e}");
        let e = Tree::load(&d.join("missing"), limits).unwrap_err();
        assert!(matches!(e, SiteError::Io(..)), "{e}");
        assert!(!e.to_string().contains('\n'));
        let _ = fs::remove_dir_all(&d);
    }
}
