//! Reading the files users hand the controller: inventories, vars files, playbooks,
//! policies, mig-parted configs, `-e @file`, `--limit @file`, known_hosts.
//!
//! Each is a path someone typed or a directory someone else may have filled, so a read
//! never blocks and never grows without bound: only regular files are read (a FIFO is
//! opened without waiting for a writer and then refused, as are devices such as
//! `/dev/zero`), and at most [`MAX_INPUT_BYTES`] of them.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest input file read: far above any real inventory (100,000 hosts with
/// variables take about 4 MB) or playbook, far below what would exhaust memory.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// The whole file as UTF-8 text; see [`read_bytes`].
pub fn read_text(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// The whole file, if it is a regular file of at most [`MAX_INPUT_BYTES`].
pub fn read_bytes(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it has no effect on the
    // reads of a regular file, the only kind read below).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path.as_ref())?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file (only regular files are read)",
                kind(meta.file_type())
            ),
        ));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    read_capped(file, meta.len())
}

fn read_capped(file: File, expected: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    // One byte more than allowed tells a file that grew past the limit while read.
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large());
    }
    Ok(buf)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "larger than {} MiB, the most read from one file",
            MAX_INPUT_BYTES >> 20
        ),
    )
}

fn kind(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("migfleet-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_text(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        let e = read_text(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("is a character device"), "{e}");
        let e = read_text(&dir).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let big = dir.join("big");
        File::create(&big)
            .unwrap()
            .set_len(MAX_INPUT_BYTES + 1)
            .unwrap();
        let e = read_text(&big).unwrap_err().to_string();
        assert!(e.contains("larger than 64 MiB"), "{e}");
        let ok = dir.join("ok");
        std::fs::write(&ok, "all:\n").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "all:\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
