//! A temporary directory tree for the tests that serve files, removed on drop.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::temp_path;

/// A temporary directory tree, removed on drop.
pub struct TempTree(PathBuf);

impl TempTree {
    pub fn new(tag: &str) -> TempTree {
        let p = temp_path(tag, "d");
        fs::create_dir_all(&p).expect("create temp dir");
        TempTree(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, rel: &str, data: &[u8]) {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create dirs");
        }
        fs::write(p, data).expect("write file");
    }

    pub fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
