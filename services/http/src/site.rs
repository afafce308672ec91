//! What the server serves: a fixed body for every path, or a directory tree
//! loaded into memory at start (bounded), looked up by a sanitized path.
//!
//! Requests never touch the file system: the tree is read once, and a path
//! can only name what was loaded under the root. The sanitizer still refuses
//! what would climb out (`..` after percent-decoding, NUL, a target that is
//! not absolute), so such requests get 400 rather than a lookup.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A response body with its precomputed `Content-Type` and `Content-Length`
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
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(b"Content-Type: ");
        header.extend_from_slice(content_type.as_bytes());
        header.extend_from_slice(b"\r\nContent-Length: ");
        header.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
        header.extend_from_slice(b"\r\n");
        Body {
            data: data.into_boxed_slice(),
            header: header.into_boxed_slice(),
            content_type,
        }
    }
}

/// One name in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// A file: index into `Site::bodies`.
    File(u32),
    /// A directory and its `index.html`, if any.
    Dir(Option<u32>),
}

/// What a path resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Serve this body.
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
    /// A directory tree in memory.
    Tree(Tree),
}

impl Site {
    /// The body with index `i` (the fixed body is index 0).
    pub fn body(&self, i: u32) -> Option<&Body> {
        match self {
            Site::Fixed(b) => (i == 0).then_some(b),
            Site::Tree(t) => t.bodies.get(i as usize),
        }
    }
}

/// A directory tree loaded into memory.
#[derive(Debug, Default)]
pub struct Tree {
    entries: HashMap<Box<[u8]>, Entry>,
    bodies: Vec<Body>,
    bytes: u64,
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
    /// The tree is larger than the limit.
    #[error("--root {root} holds more than {limit} bytes of files (at least {seen}); raise --max-root-bytes or serve a smaller tree")]
    TooLarge {
        /// The root.
        root: String,
        /// The limit.
        limit: u64,
        /// Bytes seen when the limit was passed.
        seen: u64,
    },
    /// Too many names.
    #[error("--root {root} holds more than {limit} files and directories")]
    TooManyFiles {
        /// The root.
        root: String,
        /// The limit.
        limit: usize,
    },
}

/// Most files and directories loaded from a root.
pub const MAX_ENTRIES: usize = 1_000_000;

impl Tree {
    /// Loads every regular file under `root` (following symbolic links only
    /// when they stay inside the root). Refuses a tree whose files add up to
    /// more than `max_bytes`.
    pub fn load(root: &Path, max_bytes: u64) -> Result<Tree, SiteError> {
        let show = |p: &Path| p.display().to_string();
        let root_c = fs::canonicalize(root).map_err(|e| SiteError::Io(show(root), e))?;
        if !root_c.is_dir() {
            return Err(SiteError::NotADir(show(root)));
        }
        // First the names and sizes (so a too-large tree is refused before
        // anything is read), then the contents.
        let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
        let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut seen_dirs: HashSet<PathBuf> = HashSet::from([root_c.clone()]);
        let mut stack: Vec<(Vec<u8>, PathBuf)> = vec![(Vec::new(), root_c.clone())];
        let mut total: u64 = 0;
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
                    total = total.saturating_add(meta.len());
                    if total > max_bytes {
                        return Err(SiteError::TooLarge {
                            root: show(root),
                            limit: max_bytes,
                            seen: total,
                        });
                    }
                    files.push((child, real));
                }
                // Sockets, FIFOs, devices: never served (reading a FIFO
                // would block).
            }
        }
        let mut tree = Tree::default();
        let mut read_total: u64 = 0;
        for (key, path) in files {
            let data = fs::read(&path).map_err(|e| SiteError::Io(show(&path), e))?;
            read_total += data.len() as u64;
            if read_total > max_bytes {
                // The tree grew while it was being read.
                return Err(SiteError::TooLarge {
                    root: show(root),
                    limit: max_bytes,
                    seen: read_total,
                });
            }
            let ct = content_type(&key);
            let idx = tree.bodies.len() as u32;
            tree.bodies.push(Body::new(data, ct));
            tree.entries
                .insert(key.into_boxed_slice(), Entry::File(idx));
        }
        tree.bytes = read_total;
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
        self.bodies.len()
    }

    /// Bytes loaded.
    pub fn bytes(&self) -> u64 {
        self.bytes
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
        let t = Tree::load(&d, 1 << 20).unwrap();
        let get = |target: &str| {
            let mut key = Vec::new();
            let n = normalize(target, &mut key).unwrap();
            match t.resolve(&key, n.trailing_slash) {
                Resolved::Found(i) => {
                    Ok(String::from_utf8_lossy(&t.bodies[i as usize].data).into_owned())
                }
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
        let body = &t.bodies[idx as usize];
        assert_eq!(
            &*body.header,
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
        );
        let _ = fs::remove_dir_all(&d);
        let _ = fs::remove_dir_all(&outside);
    }

    #[test]
    fn too_large_and_missing_roots_are_refused() {
        let d = temp_dir("big");
        fs::write(d.join("a"), vec![0u8; 600]).unwrap();
        fs::write(d.join("b"), vec![0u8; 600]).unwrap();
        let e = Tree::load(&d, 1000).unwrap_err();
        assert!(matches!(e, SiteError::TooLarge { limit: 1000, .. }), "{e}");
        assert!(e.to_string().contains("--max-root-bytes"), "{e}");
        assert!(Tree::load(&d, 1200).is_ok());
        let e = Tree::load(&d.join("a"), 1 << 20).unwrap_err();
        assert!(matches!(e, SiteError::NotADir(_)), "{e}");
        let e = Tree::load(&d.join("missing"), 1 << 20).unwrap_err();
        assert!(matches!(e, SiteError::Io(..)), "{e}");
        assert!(!e.to_string().contains('\n'));
        let _ = fs::remove_dir_all(&d);
    }
}
