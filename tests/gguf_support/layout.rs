//! Where each field of a (valid, little-endian) GGUF file's header lies, so a test can
//! overwrite one count, type or offset, or cut the file at a field boundary. Written
//! independently of the reader under test, from the format: magic, version, tensor count,
//! metadata count, key-value pairs, tensor infos, aligned data section.

/// One header field: a name such as `tensor_count`, `kv[llama.block_count].type`,
/// `tensor[output.weight].dim1`, its byte range, and whether it is a u64 count or length.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub at: usize,
    pub len: usize,
    pub is_count: bool,
}

/// The fields of a GGUF header in file order, and where the data section starts.
#[derive(Clone, Debug)]
pub struct Layout {
    pub fields: Vec<Field>,
    pub data_start: usize,
}

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
    fields: Vec<Field>,
}

impl Walker<'_> {
    fn field(&mut self, name: String, len: usize, is_count: bool) -> u64 {
        let mut v = [0u8; 8];
        v[..len].copy_from_slice(&self.bytes[self.at..self.at + len]);
        self.fields.push(Field { name, at: self.at, len, is_count });
        self.at += len;
        u64::from_le_bytes(v)
    }

    fn string(&mut self, name: &str) -> String {
        let n = self.field(format!("{name}.len"), 8, true) as usize;
        let s = String::from_utf8(self.bytes[self.at..self.at + n].to_vec()).unwrap();
        self.fields.push(Field { name: name.to_string(), at: self.at, len: n, is_count: false });
        self.at += n;
        s
    }

    /// Names the string just read (its length and bytes) `name`, once its text is known.
    fn rename_last_string(&mut self, name: &str) {
        let n = self.fields.len();
        self.fields[n - 2].name = format!("{name}.len");
        self.fields[n - 1].name = name.to_string();
    }

    fn value(&mut self, ty: u64, name: &str) {
        match ty {
            0 | 1 | 7 => drop(self.field(name.to_string(), 1, false)),
            2 | 3 => drop(self.field(name.to_string(), 2, false)),
            4..=6 => drop(self.field(name.to_string(), 4, false)),
            10..=12 => drop(self.field(name.to_string(), 8, false)),
            8 => drop(self.string(name)),
            9 => {
                let elem = self.field(format!("{name}.elem_type"), 4, false);
                let n = self.field(format!("{name}.count"), 8, true);
                for i in 0..n {
                    self.value(elem, &format!("{name}[{i}]"));
                }
            }
            other => panic!("value type {other}"),
        }
    }
}

impl Layout {
    pub fn of(bytes: &[u8]) -> Layout {
        let mut w = Walker { bytes, at: 0, fields: Vec::new() };
        w.field("magic".into(), 4, false);
        w.field("version".into(), 4, false);
        let n_tensors = w.field("tensor_count".into(), 8, true);
        let n_kv = w.field("kv_count".into(), 8, true);
        for _ in 0..n_kv {
            let key = w.string("kv.key");
            w.rename_last_string(&format!("kv[{key}].key"));
            let ty = w.field(format!("kv[{key}].type"), 4, false);
            w.value(ty, &format!("kv[{key}].value"));
        }
        for _ in 0..n_tensors {
            let name = w.string("tensor.name");
            w.rename_last_string(&format!("tensor[{name}].name"));
            let n_dims = w.field(format!("tensor[{name}].n_dims"), 4, false);
            for d in 0..n_dims {
                w.field(format!("tensor[{name}].dim{d}"), 8, true);
            }
            w.field(format!("tensor[{name}].type"), 4, false);
            w.field(format!("tensor[{name}].offset"), 8, false);
        }
        Layout { data_start: w.at.div_ceil(32) * 32, fields: w.fields }
    }

    /// The field called `name` (panics if there is none: a broken test).
    pub fn field(&self, name: &str) -> &Field {
        self.fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no field {name}"))
    }

    /// Where tensor `name`'s data starts.
    pub fn data_of(&self, bytes: &[u8], name: &str) -> usize {
        self.data_start + get(bytes, self.field(&format!("tensor[{name}].offset"))) as usize
    }
}

/// The value of integer field `f`.
pub fn get(bytes: &[u8], f: &Field) -> u64 {
    let mut v = [0u8; 8];
    v[..f.len].copy_from_slice(&bytes[f.at..f.at + f.len]);
    u64::from_le_bytes(v)
}

/// Overwrites integer field `f` with `value` (its low `f.len` bytes, little-endian).
pub fn put(bytes: &mut [u8], f: &Field, value: u64) {
    bytes[f.at..f.at + f.len].copy_from_slice(&value.to_le_bytes()[..f.len]);
}
