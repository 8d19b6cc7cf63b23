//! Bounds-checked little-endian reads from a file held in memory.
//!
//! Every header offset and count comes from the file itself, so every read is checked:
//! a damaged file gives [`Error::Truncated`] naming what was being read, never a panic.

use std::path::Path;

use crate::error::{Error, Result};

/// A file's bytes with its path, for reads that name the file in their errors.
pub(crate) struct Bytes<'a> {
    pub path: &'a Path,
    pub data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// `len` bytes at `offset`; `what` names them in the error.
    pub fn slice(&self, offset: u64, len: u64, what: &str) -> Result<&'a [u8]> {
        let end = offset.checked_add(len);
        match end {
            Some(end) if end <= self.data.len() as u64 => {
                Ok(&self.data[offset as usize..end as usize])
            }
            _ => Err(Error::Truncated {
                path: self.path.to_path_buf(),
                what: what.to_string(),
                start: offset,
                end: end.unwrap_or(u64::MAX),
                len: self.data.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&self, offset: u64, what: &str) -> Result<[u8; N]> {
        let s = self.slice(offset, N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn i16(&self, offset: u64, what: &str) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array(offset, what)?))
    }
    pub fn u16(&self, offset: u64, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(offset, what)?))
    }
    pub fn i32(&self, offset: u64, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(offset, what)?))
    }
    pub fn u32(&self, offset: u64, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(offset, what)?))
    }
    pub fn i64(&self, offset: u64, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(offset, what)?))
    }
    pub fn f32(&self, offset: u64, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(offset, what)?))
    }

    /// A fixed-width text field: Latin-1 bytes up to the first NUL, trimmed; `µ` (0xB5) is
    /// written `u` so unit names match the usual ASCII spelling (`uV`).
    pub fn text(&self, offset: u64, len: u64, what: &str) -> Result<String> {
        Ok(latin1(self.slice(offset, len, what)?))
    }

    /// A corrupt-header error for this file.
    pub fn corrupt(&self, message: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Latin-1 text up to the first NUL, trimmed, with `µ` written `u`.
pub(crate) fn latin1(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    raw[..end]
        .iter()
        .map(|&b| if b == 0xB5 { 'u' } else { b as char })
        .collect::<String>()
        .trim()
        .to_string()
}
