//! Tokenizers built from a GGUF's own metadata.
//!
//! Two vocabularies exist in the wild: GPT-2 style byte-level BPE
//! (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Llama 3, Qwen2) and
//! SentencePiece with byte fallback (`"llama"`: Mistral, Gemma). Both follow
//! llama.cpp's algorithms, which is what the GGUF's producer checked the file
//! against; the parity test holds us to that token for token.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use fancy_regex::Regex;

use super::gguf::{Gguf, GgufError, Value};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported tokenizer model `{0}` (supported: gpt2, llama)")]
    UnknownModel(String),
    #[error(
        "unknown pre-tokenizer `{0}` (supported: default, gpt2, smollm, llama-bpe, llama3, qwen2); \
         refusing to guess because a wrong one silently changes every answer"
    )]
    UnknownPre(String),
    #[error("tokenizer metadata is inconsistent: {0}")]
    Invalid(String),
}

/// GGUF token types (llama.h `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: u64) -> TokenKind {
        match v {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }
}

/// (left, right) → (rank, merged) for byte-level BPE.
type MergeTable = HashMap<(u32, u32), (u32, u32)>;

enum Algorithm {
    Bpe {
        splitters: Vec<Regex>,
        merges: MergeTable,
        /// Llama 3: a whole pre-token found in the vocabulary is emitted as is.
        ignore_merges: bool,
        byte_to_char: Box<[char; 256]>,
        char_to_byte: HashMap<char, u8>,
    },
    SentencePiece {
        scores: Vec<f32>,
        add_space_prefix: bool,
        byte_tokens: Box<[Option<u32>; 256]>,
    },
}

pub struct Tokenizer {
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    ids: HashMap<String, u32>,
    algorithm: Algorithm,
    /// Specials matched in raw text, longest first: (text, id, kind).
    specials: Vec<(String, u32, TokenKind)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// End-of-turn markers besides EOS (e.g. `<|im_end|>`, `<end_of_turn>`).
    pub end_of_turn: Vec<u32>,
}

/// The splitting regexes llama.cpp applies (in order) for each `pre` value.
fn pre_tokenizer(pre: &str) -> Result<(Vec<&'static str>, bool), TokenizerError> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    Ok(match pre {
        "gpt2" | "gpt-2" => (vec![GPT2], false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" => {
            (vec![r"\p{N}", GPT2], false)
        }
        "default" => (
            vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            false,
        ),
        "llama-bpe" | "llama3" | "llama-v3" => (
            vec![
                r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ],
            true,
        ),
        "qwen2" => (
            vec![
                r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            ],
            false,
        ),
        other => return Err(TokenizerError::UnknownPre(other.to_string())),
    })
}

/// GPT-2's reversible byte → printable character table.
fn byte_level_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).unwrap_or('\u{FFFD}');
            next += 1;
            c
        };
    }
    table
}

fn optional_id(gguf: &Gguf, key: &str, vocab: usize) -> Option<u32> {
    gguf.get(key)
        .and_then(Value::as_u64)
        .filter(|&id| (id as usize) < vocab)
        .map(|id| id as u32)
}

fn optional_bool(gguf: &Gguf, key: &str) -> Option<bool> {
    match gguf.get(key) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

impl Tokenizer {
    pub fn from_gguf(gguf: &Gguf) -> Result<Tokenizer, TokenizerError> {
        let model = gguf.string("tokenizer.ggml.model")?;
        let tokens: Vec<String> = gguf
            .array("tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| TokenizerError::Invalid("tokens are not strings".into()))?;
        if tokens.is_empty() {
            return Err(TokenizerError::Invalid("empty vocabulary".into()));
        }
        let kinds: Vec<TokenKind> = match gguf.get("tokenizer.ggml.token_type") {
            Some(Value::Array(items)) if items.len() == tokens.len() => items
                .iter()
                .map(|v| TokenKind::from_gguf(v.as_u64().unwrap_or(1)))
                .collect(),
            Some(_) => {
                return Err(TokenizerError::Invalid(
                    "token_type does not match the vocabulary".into(),
                ));
            }
            None => vec![TokenKind::Normal; tokens.len()],
        };
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            // The first occurrence wins, as in llama.cpp.
            ids.entry(t.clone()).or_insert(i as u32);
        }
        let vocab = tokens.len();
        let algorithm = match model {
            "gpt2" => {
                let pre = gguf
                    .get("tokenizer.ggml.pre")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                let (patterns, ignore_merges) = pre_tokenizer(pre)?;
                let splitters = patterns
                    .iter()
                    .map(|p| Regex::new(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| TokenizerError::Invalid(e.to_string()))?;
                let merges = read_merges(gguf, &ids)?;
                let byte_to_char = Box::new(byte_level_table());
                let char_to_byte = byte_to_char
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| (c, b as u8))
                    .collect();
                Algorithm::Bpe {
                    splitters,
                    merges,
                    ignore_merges,
                    byte_to_char,
                    char_to_byte,
                }
            }
            "llama" => {
                let scores: Vec<f32> = match gguf.get("tokenizer.ggml.scores") {
                    Some(Value::Array(items)) if items.len() == vocab => items
                        .iter()
                        .map(|v| v.as_f64().unwrap_or(0.0) as f32)
                        .collect(),
                    _ => {
                        return Err(TokenizerError::Invalid(
                            "a SentencePiece vocabulary needs one score per token".into(),
                        ));
                    }
                };
                let mut byte_tokens = Box::new([None; 256]);
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = ids.get(&format!("<0x{b:02X}>")).copied();
                }
                Algorithm::SentencePiece {
                    scores,
                    add_space_prefix: optional_bool(gguf, "tokenizer.ggml.add_space_prefix")
                        .unwrap_or(true),
                    byte_tokens,
                }
            }
            other => return Err(TokenizerError::UnknownModel(other.to_string())),
        };
        let mut specials: Vec<(String, u32, TokenKind)> = tokens
            .iter()
            .zip(&kinds)
            .enumerate()
            .filter(|(_, (t, k))| {
                !t.is_empty()
                    && matches!(
                        k,
                        TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                    )
            })
            .map(|(i, (t, k))| (t.clone(), i as u32, *k))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let bos = optional_id(gguf, "tokenizer.ggml.bos_token_id", vocab);
        let eos = optional_id(gguf, "tokenizer.ggml.eos_token_id", vocab);
        let default_add_bos = matches!(algorithm, Algorithm::SentencePiece { .. });
        let add_bos =
            optional_bool(gguf, "tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos);
        let mut end_of_turn: Vec<u32> =
            ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .iter()
                .filter_map(|k| optional_id(gguf, k, vocab))
                .collect();
        // Files often lack eot_token_id; these markers end a turn in every
        // template that uses them.
        for marker in [
            "<|im_end|>",
            "<|eot_id|>",
            "<end_of_turn>",
            "<|end|>",
            "<|endoftext|>",
        ] {
            if let Some(&id) = ids.get(marker)
                && kinds[id as usize] == TokenKind::Control
                && !end_of_turn.contains(&id)
            {
                end_of_turn.push(id);
            }
        }
        Ok(Tokenizer {
            tokens,
            kinds,
            ids,
            algorithm,
            specials,
            bos,
            eos,
            add_bos,
            end_of_turn,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn is_end(&self, id: u32) -> bool {
        Some(id) == self.eos || self.end_of_turn.contains(&id)
    }

    /// Texts of control tokens: removed from untrusted text before it goes
    /// into a prompt so a document cannot forge a turn boundary.
    pub fn control_texts(&self) -> impl Iterator<Item = &str> {
        self.specials
            .iter()
            .filter(|(_, _, k)| *k == TokenKind::Control)
            .map(|(t, _, _)| t.as_str())
    }

    /// Tokenize `text`. With `parse_special`, control-token texts in it become
    /// those tokens (used for a chat template's own text only).
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        self.encode_spliced(&[(text, parse_special)], add_bos)
    }

    /// Tokenize consecutive pieces of one text, each with or without
    /// control-token parsing: a chat template's own text is parsed, the
    /// messages spliced into it never are, so no document, question or
    /// earlier answer can open or close a turn, however it spells the marker.
    pub fn encode_spliced(&self, parts: &[(&str, bool)], add_bos: bool) -> Vec<u32> {
        let len: usize = parts.iter().map(|(t, _)| t.len()).sum();
        let mut out = Vec::with_capacity(len / 3 + 2);
        if add_bos && let Some(bos) = self.bos {
            out.push(bos);
        }
        let mut first_fragment = true;
        for (text, parse_special) in parts {
            for fragment in self.partition_specials(text, *parse_special) {
                match fragment {
                    Fragment::Special(id) => out.push(id),
                    Fragment::Text(t) => {
                        self.encode_text(t, first_fragment, &mut out);
                    }
                }
                first_fragment = false;
            }
        }
        out
    }

    fn partition_specials<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut fragments = vec![Fragment::Text(text)];
        for (special, id, kind) in &self.specials {
            if !parse_special && *kind != TokenKind::UserDefined {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len());
            for f in fragments {
                match f {
                    Fragment::Text(t) if t.contains(special.as_str()) => {
                        let mut rest = t;
                        while let Some(at) = rest.find(special.as_str()) {
                            if at > 0 {
                                next.push(Fragment::Text(&rest[..at]));
                            }
                            next.push(Fragment::Special(*id));
                            rest = &rest[at + special.len()..];
                        }
                        if !rest.is_empty() {
                            next.push(Fragment::Text(rest));
                        }
                    }
                    other => next.push(other),
                }
            }
            fragments = next;
        }
        fragments
    }

    fn encode_text(&self, text: &str, at_start: bool, out: &mut Vec<u32>) {
        match &self.algorithm {
            Algorithm::Bpe {
                splitters,
                merges,
                ignore_merges,
                byte_to_char,
                ..
            } => {
                for word in split_words(text, splitters) {
                    let encoded: String = word.bytes().map(|b| byte_to_char[b as usize]).collect();
                    if *ignore_merges && let Some(&id) = self.ids.get(&encoded) {
                        out.push(id);
                        continue;
                    }
                    self.bpe_word(&encoded, merges, out);
                }
            }
            Algorithm::SentencePiece {
                scores,
                add_space_prefix,
                byte_tokens,
            } => {
                let mut escaped = String::with_capacity(text.len() + 3);
                if *add_space_prefix && at_start {
                    escaped.push('▁');
                }
                for c in text.chars() {
                    escaped.push(if c == ' ' { '▁' } else { c });
                }
                self.spm_text(&escaped, scores, byte_tokens, out);
            }
        }
    }

    fn bpe_word(&self, word: &str, merges: &MergeTable, out: &mut Vec<u32>) {
        // Symbols start as single characters, each a vocabulary token.
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let mut unknown_chars = Vec::new();
        for (i, c) in word.char_indices() {
            let s = &word[i..i + c.len_utf8()];
            match self.ids.get(s) {
                Some(&id) => symbols.push(Symbol::new(id, symbols.len())),
                None => unknown_chars.push(i),
            }
        }
        if !unknown_chars.is_empty() {
            // Cannot happen with a complete byte-level vocabulary; emit what
            // is known rather than nothing.
            tracing::debug!(word, "characters missing from a byte-level vocabulary");
        }
        let n = symbols.len();
        if n == 0 {
            return;
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut heap = BinaryHeap::new();
        let push_pair = |heap: &mut BinaryHeap<Candidate>, symbols: &[Symbol], left: usize| {
            if let Some(right) = symbols[left].next
                && let Some(&(rank, merged)) = merges.get(&(symbols[left].id, symbols[right].id))
            {
                heap.push(Candidate {
                    priority: -(rank as f64),
                    left,
                    left_id: symbols[left].id,
                    right_id: symbols[right].id,
                    merged,
                });
            }
        };
        for i in 0..n {
            push_pair(&mut heap, &symbols, i);
        }
        while let Some(c) = heap.pop() {
            let left = c.left;
            let Some(right) = symbols[left].next else {
                continue;
            };
            // Stale: one side already merged into something else.
            if !symbols[left].alive
                || symbols[left].id != c.left_id
                || symbols[right].id != c.right_id
            {
                continue;
            }
            symbols[left].id = c.merged;
            symbols[left].next = symbols[right].next;
            symbols[right].alive = false;
            if let Some(after) = symbols[right].next {
                symbols[after].prev = Some(left);
            }
            if let Some(prev) = symbols[left].prev {
                push_pair(&mut heap, &symbols, prev);
            }
            push_pair(&mut heap, &symbols, left);
        }
        out.extend(symbols.iter().filter(|s| s.alive).map(|s| s.id));
    }

    fn spm_text(
        &self,
        text: &str,
        scores: &[f32],
        byte_tokens: &[Option<u32>; 256],
        out: &mut Vec<u32>,
    ) {
        // Symbols are spans of `text`; merging concatenates neighbours whose
        // joined text is a vocabulary piece, best score first.
        let mut spans: Vec<(usize, usize)> = text
            .char_indices()
            .map(|(i, c)| (i, i + c.len_utf8()))
            .collect();
        let n = spans.len();
        if n == 0 {
            return;
        }
        let mut symbols: Vec<Symbol> = (0..n).map(|i| Symbol::new(0, i)).collect();
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut heap = BinaryHeap::new();
        let try_pair = |heap: &mut BinaryHeap<Candidate>,
                        symbols: &[Symbol],
                        spans: &[(usize, usize)],
                        left: usize| {
            if let Some(right) = symbols[left].next {
                let joined = &text[spans[left].0..spans[right].1];
                if let Some(&id) = self.ids.get(joined) {
                    heap.push(Candidate {
                        priority: f64::from(scores[id as usize]),
                        left,
                        left_id: spans[left].1 as u32,
                        right_id: spans[right].1 as u32,
                        merged: id,
                    });
                }
            }
        };
        for i in 0..n {
            try_pair(&mut heap, &symbols, &spans, i);
        }
        while let Some(c) = heap.pop() {
            let left = c.left;
            let Some(right) = symbols[left].next else {
                continue;
            };
            if !symbols[left].alive
                || spans[left].1 as u32 != c.left_id
                || spans[right].1 as u32 != c.right_id
            {
                continue;
            }
            spans[left].1 = spans[right].1;
            symbols[left].next = symbols[right].next;
            symbols[right].alive = false;
            if let Some(after) = symbols[right].next {
                symbols[after].prev = Some(left);
            }
            if let Some(prev) = symbols[left].prev {
                try_pair(&mut heap, &symbols, &spans, prev);
            }
            try_pair(&mut heap, &symbols, &spans, left);
        }
        for (i, s) in symbols.iter().enumerate() {
            if !s.alive {
                continue;
            }
            let piece = &text[spans[i].0..spans[i].1];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = byte_tokens[b as usize] {
                            out.push(id);
                        } else if let Some(&unk) = self.ids.get("<unk>") {
                            out.push(unk);
                        }
                    }
                }
            }
        }
    }

    /// The bytes a token stands for (control tokens produce none).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.kinds[id as usize] {
            TokenKind::Control | TokenKind::Unused | TokenKind::Unknown => return Vec::new(),
            _ => {}
        }
        match &self.algorithm {
            Algorithm::Bpe { char_to_byte, .. } => {
                if self.kinds[id as usize] == TokenKind::UserDefined {
                    return text.as_bytes().to_vec();
                }
                let mut bytes = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match char_to_byte.get(&c) {
                        Some(&b) => bytes.push(b),
                        None => {
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
                bytes
            }
            Algorithm::SentencePiece { .. } => {
                if self.kinds[id as usize] == TokenKind::Byte
                    && let Some(hex) = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>'))
                    && let Ok(b) = u8::from_str_radix(hex, 16)
                {
                    return vec![b];
                }
                text.replace('▁', " ").into_bytes()
            }
        }
    }

    /// Decode a whole sequence to text (lossy for invalid UTF-8).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id));
        }
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if let Algorithm::SentencePiece {
            add_space_prefix: true,
            ..
        } = self.algorithm
            && text.starts_with(' ')
        {
            text.remove(0);
        }
        text
    }

    pub fn token_text(&self, id: u32) -> &str {
        self.tokens
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
}

enum Fragment<'t> {
    Text(&'t str),
    Special(u32),
}

#[derive(Clone)]
struct Symbol {
    id: u32,
    prev: Option<usize>,
    next: Option<usize>,
    alive: bool,
}

impl Symbol {
    fn new(id: u32, index: usize) -> Symbol {
        Symbol {
            id,
            prev: index.checked_sub(1),
            next: Some(index + 1),
            alive: true,
        }
    }
}

/// A possible merge; the heap pops the highest priority, then the leftmost.
struct Candidate {
    priority: f64,
    left: usize,
    left_id: u32,
    right_id: u32,
    merged: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then_with(|| other.left.cmp(&self.left))
    }
}

fn read_merges(gguf: &Gguf, ids: &HashMap<String, u32>) -> Result<MergeTable, TokenizerError> {
    let items = gguf.array("tokenizer.ggml.merges")?;
    let mut merges = HashMap::with_capacity(items.len());
    for (rank, item) in items.iter().enumerate() {
        let line = item
            .as_str()
            .ok_or_else(|| TokenizerError::Invalid("merges are not strings".into()))?;
        // Split on the first space that is not the line's first character.
        let first = line.chars().next().map_or(0, char::len_utf8);
        let Some(at) = line[first..].find(' ').map(|i| i + first) else {
            return Err(TokenizerError::Invalid(format!(
                "merge `{line}` has no space"
            )));
        };
        let (left, right) = (&line[..at], &line[at + 1..]);
        let joined = format!("{left}{right}");
        if let (Some(&l), Some(&r), Some(&m)) = (ids.get(left), ids.get(right), ids.get(&joined)) {
            merges.entry((l, r)).or_insert((rank as u32, m));
        }
    }
    Ok(merges)
}

/// Apply the splitting regexes in sequence: each one cuts every piece so far
/// into its matches and the text between them.
fn split_words<'t>(text: &'t str, splitters: &[Regex]) -> Vec<&'t str> {
    let mut pieces = vec![text];
    for re in splitters {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for piece in pieces {
            let mut last = 0;
            for m in re.find_iter(piece) {
                let Ok(m) = m else {
                    // Backtracking limit hit on hostile input: keep the rest
                    // as one piece instead of failing the whole request.
                    break;
                };
                if m.start() > last {
                    next.push(&piece[last..m.start()]);
                }
                if m.end() > m.start() {
                    next.push(m.as_str());
                }
                last = m.end();
            }
            if last < piece.len() {
                next.push(&piece[last..]);
            }
        }
        pieces = next;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::gguf::Writer;

    /// A SentencePiece vocabulary: pieces merge best score first; characters
    /// missing from the vocabulary fall back to byte tokens.
    #[test]
    fn sentencepiece_merges_by_score_with_byte_fallback() {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        let pieces = [
            ("▁", -1.0),
            ("h", -2.0),
            ("e", -2.0),
            ("l", -2.0),
            ("o", -2.0),
            ("he", -3.0),
            ("ll", -1.5),
            ("llo", -2.5),
            ("hello", -4.0),
            ("▁hello", -5.0),
        ];
        let mut scores: Vec<Value> = tokens.iter().map(|_| Value::F32(0.0)).collect();
        for (p, s) in pieces {
            tokens.push(p.into());
            types.push(1);
            scores.push(Value::F32(s));
        }
        let mut w = Writer::new();
        w.meta("tokenizer.ggml.model", Value::String("llama".into()))
            .meta(
                "tokenizer.ggml.tokens",
                Value::Array(tokens.iter().cloned().map(Value::String).collect()),
            )
            .meta("tokenizer.ggml.scores", Value::Array(scores))
            .meta(
                "tokenizer.ggml.token_type",
                Value::Array(types.into_iter().map(Value::I32).collect()),
            )
            .meta("tokenizer.ggml.bos_token_id", Value::U32(1));
        let mut bytes = Vec::new();
        w.write_to(&mut bytes, |_, _, _| {}).unwrap();
        let gguf = Gguf::from_bytes(bytes).unwrap();
        let tok = Tokenizer::from_gguf(&gguf).unwrap();
        let id = |t: &str| tokens.iter().position(|x| x == t).unwrap() as u32;
        assert_eq!(tok.encode("hello", true, false), vec![1, id("▁hello")]);
        // "€" is not a piece: its three UTF-8 bytes become byte tokens.
        assert_eq!(
            tok.encode("hello €", false, false),
            vec![
                id("▁hello"),
                id("▁"),
                id("<0xE2>"),
                id("<0x82>"),
                id("<0xAC>")
            ]
        );
        assert_eq!(tok.decode(&tok.encode("hello €", true, false)), "hello €");
    }
}
