//! Numeric data files: CSV (one trace per line, an optional header) and `.npy` (1-D or 2-D
//! float64/float32, C or Fortran order). Errors are plain text; the caller names the file
//! and the key.

use npyz::{NpyFile, Order, TypeChar};

/// A CSV of numbers: the header (when the first line is not numeric) and the rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NumberTable {
    /// The first line's cells, when they are not all numbers.
    pub header: Option<Vec<String>>,
    /// One row per data line.
    pub rows: Vec<Vec<f64>>,
}

/// Parses CSV text: cells separated by commas (or semicolons, tabs, spaces), quoted as the
/// `csv` crate writes them, `#` comment lines. A non-numeric first line is the header.
/// `ragged`: a blank line is an empty row (a trace without spikes) instead of skipped.
pub fn parse_csv(text: &str, ragged: bool) -> Result<NumberTable, String> {
    let mut table = NumberTable::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && !ragged) {
            continue;
        }
        let cells = split_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let parsed: Result<Vec<f64>, _> = cells.iter().map(|c| c.parse::<f64>()).collect();
        match parsed {
            Ok(r) => table.rows.push(r),
            Err(_) if i == 0 => table.header = Some(cells),
            Err(e) => {
                return Err(format!(
                    "line {}: {e} (expected numbers separated by commas)",
                    i + 1
                ));
            }
        }
    }
    Ok(table)
}

/// The non-empty cells of one line. With a comma, semicolon or tab outside quotes the line
/// is read by the `csv` crate with that delimiter (so quoted cells may hold it); otherwise
/// the cells are separated by spaces.
fn split_line(line: &str) -> Result<Vec<String>, String> {
    let Some(delimiter) = delimiter_of(line) else {
        return Ok(line.split_whitespace().map(String::from).collect());
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    reader.read_record(&mut record).map_err(|e| e.to_string())?;
    Ok(record
        .iter()
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect())
}

/// The first of `,` `;` `\t` that occurs outside double quotes.
fn delimiter_of(line: &str) -> Option<u8> {
    let mut quoted = false;
    for b in line.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b',' | b';' | b'\t' if !quoted => return Some(b),
            _ => {}
        }
    }
    None
}

/// The rows of a 1-D (one row) or 2-D `.npy` array of float64 or float32.
pub fn parse_npy(bytes: &[u8]) -> Result<Vec<Vec<f64>>, String> {
    check_header_shape(bytes)?;
    let npy = NpyFile::new(bytes).map_err(|e| format!("not a valid .npy file: {e}"))?;
    let shape = npy.shape().to_vec();
    let order = npy.order();
    let data = npy_values(npy, bytes.len())?;
    match shape.as_slice() {
        [n] if *n > 0 => Ok(vec![data]),
        [r, c] if *r > 0 && *c > 0 => Ok(rows_of(&data, *r as usize, *c as usize, order)),
        [_] | [_, _] => Err(format!("the array is empty (shape {shape:?})")),
        s => Err(format!("expected a 1-D or 2-D array, found shape {s:?}")),
    }
}

/// The values of a float64 or float32 array, in file order.
fn npy_values(npy: NpyFile<&[u8]>, file_len: usize) -> Result<Vec<f64>, String> {
    let dtype = npy.dtype();
    let plain = match &dtype {
        npyz::DType::Plain(t) if t.type_char() == TypeChar::Float => Some(t.size_field()),
        _ => None,
    };
    let size = match plain {
        Some(s @ (4 | 8)) => s,
        _ => {
            return Err(format!(
                "data type {} (expected float64 or float32)",
                dtype.descr()
            ));
        }
    };
    if npy.len().saturating_mul(size) > file_len as u64 {
        return Err(format!(
            "the header promises {} values, more than the file holds",
            npy.len()
        ));
    }
    let data = if size == 4 {
        npy.into_vec::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect())
    } else {
        npy.into_vec::<f64>()
    };
    data.map_err(|e| format!("reading the values: {e}"))
}

/// Rows of an `r x c` array stored in `order`.
fn rows_of(data: &[f64], r: usize, c: usize, order: Order) -> Vec<Vec<f64>> {
    match order {
        Order::C => data.chunks(c).map(<[f64]>::to_vec).collect(),
        Order::Fortran => (0..r)
            .map(|i| (0..c).map(|j| data[j * r + i]).collect())
            .collect(),
    }
}

/// Refuses a header whose shape cannot fit the file before `npyz` multiplies it out (an
/// overflowing product would panic there).
fn check_header_shape(bytes: &[u8]) -> Result<(), String> {
    let head = &bytes[..bytes.len().min(1 << 16)];
    let text = String::from_utf8_lossy(head);
    let Some(at) = text.find("'shape'") else {
        return Ok(()); // npyz reports the malformed header
    };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(());
    };
    let mut n: u64 = 1;
    for dim in rest[open + 1..close.max(open + 1)].split(',') {
        let Ok(d) = dim.trim().parse::<u64>() else {
            continue;
        };
        n = n
            .checked_mul(d)
            .filter(|n| *n <= bytes.len() as u64)
            .ok_or("the header's shape has more values than the file holds")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `.npy` file of float64 values with the given header shape and order.
    fn npy(shape: &str, fortran: bool, values: &[f64]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '<f8', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn npy_in_c_and_fortran_order_gives_the_same_rows() {
        let c = parse_npy(&npy("(2, 3)", false, &[1., 2., 3., 4., 5., 6.])).unwrap();
        assert_eq!(c, vec![vec![1., 2., 3.], vec![4., 5., 6.]]);
        let f = parse_npy(&npy("(2, 3)", true, &[1., 4., 2., 5., 3., 6.])).unwrap();
        assert_eq!(f, c);
        let one = parse_npy(&npy("(3,)", false, &[1., 2., 3.])).unwrap();
        assert_eq!(one, vec![vec![1., 2., 3.]]);
    }

    #[test]
    fn npy_empty_huge_or_wrong_arrays_are_errors() {
        let e = parse_npy(&npy("(3, 0)", false, &[])).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = parse_npy(&npy("(0,)", false, &[])).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = parse_npy(&npy("(4294967296, 4294967296)", false, &[1.0])).unwrap_err();
        assert!(e.contains("more values than the file holds"), "{e}");
        let e = parse_npy(&npy("(1000,)", false, &[1.0])).unwrap_err();
        assert!(e.contains("more values than the file holds"), "{e}");
        let e = parse_npy(&npy("(1, 1, 1)", false, &[1.0])).unwrap_err();
        assert!(e.contains("1-D or 2-D"), "{e}");
        let mut ints = npy("(1,)", false, &[1.0]);
        let at = ints.windows(3).position(|w| w == b"<f8").unwrap();
        ints[at..at + 3].copy_from_slice(b"<i8");
        let e = parse_npy(&ints).unwrap_err();
        assert!(e.contains("expected float64 or float32"), "{e}");
        assert!(parse_npy(b"not an npy file").is_err());
    }

    #[test]
    fn csv_header_with_commas_and_separators() {
        let t = parse_csv("\"perm_entropy(order=3, delay=1)\",mean\n1,2\n3,4\n", false).unwrap();
        assert_eq!(
            t.header.unwrap(),
            vec!["perm_entropy(order=3, delay=1)", "mean"]
        );
        assert_eq!(t.rows, vec![vec![1., 2.], vec![3., 4.]]);
        let t = parse_csv("# comment\n1 2  3\n4;5;6\n7\t8\t9\n", false).unwrap();
        assert_eq!(t.rows.len(), 3);
        assert!(t.rows.iter().all(|r| r.len() == 3));
        let t = parse_csv("1,2\n\n3\n", true).unwrap();
        assert_eq!(t.rows, vec![vec![1., 2.], vec![], vec![3.]]);
        let e = parse_csv("1,2\nx,3\n", false).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
