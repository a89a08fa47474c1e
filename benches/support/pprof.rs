//! Reads a Go CPU profile (`/debug/pprof/profile`: gzip'd `profile.proto`) far enough to
//! print where the time went: the functions with the most samples on top of the stack
//! (flat) and anywhere on it (cumulative). The kube-apiserver serves it; no Go toolchain
//! is needed to read it here.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Samples by function: (flat, cumulative), in the profile's CPU nanoseconds.
pub struct Top {
    pub total_ns: i64,
    pub by_function: Vec<(String, i64, i64)>,
}

/// Decompresses (with the system's `gzip`) and summarises a profile.
pub fn top_of_gzipped(gz: &[u8]) -> Result<Top, String> {
    let raw = gunzip(gz)?;
    summarise(&Profile::decode(&raw)?)
}

fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run gzip: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("gzip stdin")?;
    let input = gz.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("gzip: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("gzip -dc failed: {}", out.status));
    }
    Ok(out.stdout)
}

#[derive(Default)]
struct Profile {
    strings: Vec<String>,
    /// (location ids, values) per sample.
    samples: Vec<(Vec<u64>, Vec<i64>)>,
    /// Location id -> function ids, innermost (inlined) first.
    locations: HashMap<u64, Vec<u64>>,
    /// Function id -> name string index.
    functions: HashMap<u64, i64>,
    /// Sample value types as string indexes (type).
    sample_types: Vec<i64>,
}

/// Protobuf wire reading: varints, and length-delimited fields as slices.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or("truncated varint")?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.skip(8)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                let end = self.at.checked_add(len).ok_or("length overflow")?;
                let bytes = self.buf.get(self.at..end).ok_or("truncated field")?;
                self.at = end;
                Value::Bytes(bytes)
            }
            5 => self.skip(4)?,
            t => return Err(format!("unsupported wire type {t}")),
        };
        Ok(Some((key >> 3, value)))
    }

    fn skip(&mut self, n: usize) -> Result<Value<'a>, String> {
        self.at = self.at.checked_add(n).ok_or("overflow")?;
        Ok(Value::Skipped)
    }
}

/// A repeated integer field: packed (bytes of varints) or one varint.
fn ints(v: Value) -> Result<Vec<u64>, String> {
    match v {
        Value::Varint(x) => Ok(vec![x]),
        Value::Bytes(b) => {
            let mut r = Reader::new(b);
            let mut out = Vec::new();
            while r.at < b.len() {
                out.push(r.varint()?);
            }
            Ok(out)
        }
        Value::Skipped => Ok(Vec::new()),
    }
}

impl Profile {
    fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut p = Profile::default();
        let mut r = Reader::new(buf);
        while let Some((field, value)) = r.field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => p.sample_types.push(first_int(b, 1)? as i64),
                (2, Value::Bytes(b)) => p.samples.push(sample(b)?),
                (4, Value::Bytes(b)) => {
                    let (id, functions) = location(b)?;
                    p.locations.insert(id, functions);
                }
                (5, Value::Bytes(b)) => {
                    p.functions
                        .insert(first_int(b, 1)?, first_int(b, 2)? as i64);
                }
                (6, Value::Bytes(b)) => p.strings.push(String::from_utf8_lossy(b).into_owned()),
                _ => {}
            }
        }
        Ok(p)
    }

    fn function_name(&self, id: u64) -> String {
        self.functions
            .get(&id)
            .and_then(|s| self.strings.get(usize::try_from(*s).ok()?))
            .cloned()
            .unwrap_or_else(|| format!("function {id}"))
    }
}

fn first_int(b: &[u8], want: u64) -> Result<u64, String> {
    let mut r = Reader::new(b);
    while let Some((field, value)) = r.field()? {
        if field == want
            && let Value::Varint(v) = value
        {
            return Ok(v);
        }
    }
    Ok(0)
}

fn sample(b: &[u8]) -> Result<(Vec<u64>, Vec<i64>), String> {
    let (mut locations, mut values) = (Vec::new(), Vec::new());
    let mut r = Reader::new(b);
    while let Some((field, value)) = r.field()? {
        match field {
            1 => locations.extend(ints(value)?),
            2 => values.extend(ints(value)?.into_iter().map(|v| v as i64)),
            _ => {}
        }
    }
    Ok((locations, values))
}

fn location(b: &[u8]) -> Result<(u64, Vec<u64>), String> {
    let (mut id, mut functions) = (0, Vec::new());
    let mut r = Reader::new(b);
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Value::Varint(v)) => id = v,
            (4, Value::Bytes(line)) => functions.push(first_int(line, 1)?),
            _ => {}
        }
    }
    Ok((id, functions))
}

fn summarise(p: &Profile) -> Result<Top, String> {
    // The value to weigh by: CPU nanoseconds (the last sample type of a CPU profile).
    let index = p
        .sample_types
        .iter()
        .position(|t| p.strings.get(*t as usize).is_some_and(|s| s == "cpu"))
        .unwrap_or(p.sample_types.len().saturating_sub(1));
    let mut flat: HashMap<u64, i64> = HashMap::new();
    let mut cumulative: HashMap<u64, i64> = HashMap::new();
    let mut total = 0i64;
    for (locations, values) in &p.samples {
        let v = values.get(index).copied().unwrap_or(0);
        total += v;
        let stack: Vec<u64> = locations
            .iter()
            .flat_map(|l| p.locations.get(l).cloned().unwrap_or_default())
            .collect();
        if let Some(top) = stack.first() {
            *flat.entry(*top).or_default() += v;
        }
        let mut seen = std::collections::HashSet::new();
        for f in stack {
            if seen.insert(f) {
                *cumulative.entry(f).or_default() += v;
            }
        }
    }
    let mut by_function: Vec<(String, i64, i64)> = cumulative
        .iter()
        .map(|(f, c)| (p.function_name(*f), flat.get(f).copied().unwrap_or(0), *c))
        .collect();
    by_function.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok(Top {
        total_ns: total,
        by_function,
    })
}

/// The `n` functions with the most cumulative time whose name contains one of `focus`
/// (all when empty), as lines "cum% flat% name".
pub fn report(top: &Top, n: usize, focus: &[&str]) -> Vec<String> {
    let pct = |v: i64| 100.0 * v as f64 / top.total_ns.max(1) as f64;
    top.by_function
        .iter()
        .filter(|(name, _, _)| focus.is_empty() || focus.iter().any(|f| name.contains(f)))
        .take(n)
        .map(|(name, flat, cum)| format!("{:5.1}% {:5.1}%  {name}", pct(*cum), pct(*flat)))
        .collect()
}

/// The `n` functions with the most flat time (on top of the stack), as [`report`].
pub fn report_flat(top: &Top, n: usize) -> Vec<String> {
    let pct = |v: i64| 100.0 * v as f64 / top.total_ns.max(1) as f64;
    let mut by_flat: Vec<&(String, i64, i64)> = top.by_function.iter().collect();
    by_flat.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_flat
        .into_iter()
        .take(n)
        .map(|(name, flat, cum)| format!("{:5.1}% {:5.1}%  {name}", pct(*cum), pct(*flat)))
        .collect()
}
