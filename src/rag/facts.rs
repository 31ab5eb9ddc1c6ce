//! The checkable facts a sentence states, normalised. A generated sentence
//! is shown only if a source passage contains every number, duration,
//! amount, percentage and proper name it states: a small model that swaps
//! "72 hours" for "8 hours" or invents a name must not get through. Facts
//! are normalised so that paraphrase still matches: "two weeks" = "2 weeks",
//! "€1,200" = "1200 EUR", "37.5-hour week" = "37.5 hours", "25%" = "25 per cent".

use std::collections::HashSet;
use std::fmt;

/// What a quantity counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Percent,
    Currency(Currency),
}

/// A currency an amount is stated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    Eur,
    Usd,
    Gbp,
}

/// A number as stated, normalised: the value in thousandths (37.5 → 37500,
/// 1,200 → 1200000) so that Eq and Hash stay exact, with the unit it counts
/// when one is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity {
    /// The value in thousandths.
    pub milli: i64,
    /// What it counts, when the text says.
    pub unit: Option<Unit>,
}

/// The facts of a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Numbers stated, sorted and deduplicated.
    pub quantities: Vec<Quantity>,
    /// Proper names stated, lowercased, sorted and deduplicated.
    pub names: Vec<String>,
}

/// The facts of a source text, prepared for containment checks: its
/// quantities, plus every lowercased word of it (a name is checked against
/// all words, since a source may write it lowercase or at a sentence start).
#[derive(Debug, Clone, Default)]
pub struct SourceFacts {
    quantities: HashSet<Quantity>,
    values: HashSet<i64>,
    words: HashSet<String>,
}

const MONTHS: &str =
    "january february march april may june july august september october november december";
/// Words allowed between a number and its unit ("seven calendar days").
const UNIT_ADJECTIVES: &str =
    "calendar working business full consecutive unused study additional extra";
/// Capitalised words that are no names: function words a model capitalises
/// mid-sentence, words about the answer itself, currency codes (units).
const NOT_NAMES: &str = "the a an this that these those it he she they we you yes no source \
    sources answer question documents document passage passages context note eur usd gbp";
/// Words whose '.' does not end a sentence; titles among them are no names.
const ABBREVIATIONS: &str = "dr mr mrs ms st jr sr prof etc vs no fig approx cf inc ltd";
const ONES: &str = "zero one two three four five six seven eight nine";
const TEENS: &str =
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen";
const TENS: &str = "twenty thirty forty fifty sixty seventy eighty ninety";

fn listed(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

/// Facts of a text (a generated sentence or a source window).
pub fn extract(text: &str) -> Facts {
    let tokens = tokenize(text);
    let (mut quantities, used) = quantities(&tokens);
    let mut names: Vec<String> = (tokens.iter().zip(&used).enumerate())
        .filter_map(|(i, (token, &used))| match &token.kind {
            Kind::Word(w) if !used && is_name(&tokens, i, w) => Some(name_parts(w)),
            _ => None,
        })
        .flatten()
        .collect();
    quantities.sort();
    quantities.dedup();
    names.sort();
    names.dedup();
    Facts { quantities, names }
}

impl Facts {
    /// Whether the text states no checkable fact.
    pub fn is_empty(&self) -> bool {
        self.quantities.is_empty() && self.names.is_empty()
    }

    /// Facts of `self` that `source` does not contain (the reasons a sentence
    /// is unsupported), as display strings like "8 hours", "1200 EUR", "Canberra".
    pub fn missing_from(&self, source: &SourceFacts) -> Vec<String> {
        let quantities = self.quantities.iter().filter(|q| !source.has(q));
        let names = self.names.iter().filter(|n| !source.words.contains(*n));
        let names = names.map(|n| capitalise(n));
        quantities.map(ToString::to_string).chain(names).collect()
    }
}

impl SourceFacts {
    /// The facts of a source text.
    pub fn of(text: &str) -> SourceFacts {
        let tokens = tokenize(text);
        let (mut quantities, _) = quantities(&tokens);
        let words = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty());
        let mut words: HashSet<String> = words.map(str::to_lowercase).collect();
        // "27 March 1942" supports "1942-03-27", and "1942-03-27" supports "March".
        for (i, token) in tokens.iter().enumerate() {
            let month = match &token.kind {
                Kind::Word(w) if capitalised(w) => month_of(&w.to_lowercase()),
                _ => iso_month(&tokens, i),
            };
            if let Some(m) = month {
                let milli = (m as i64 + 1) * 1000;
                quantities.push(Quantity { milli, unit: None });
                words.insert(month_name(m));
            }
        }
        let values = quantities.iter().map(|q| q.milli).collect();
        let quantities = quantities.into_iter().collect();
        SourceFacts {
            quantities,
            values,
            words,
        }
    }

    /// Merge in another text's facts (a window of several sentences).
    pub fn extend(&mut self, other: &SourceFacts) {
        self.quantities.extend(&other.quantities);
        self.values.extend(&other.values);
        self.words.extend(other.words.iter().cloned());
    }

    /// Whether the source states `q`: the same value, with the same unit or
    /// with no unit on either side.
    fn has(&self, q: &Quantity) -> bool {
        let bare = Quantity { unit: None, ..*q };
        match q.unit {
            None => self.values.contains(&q.milli),
            Some(_) => self.quantities.contains(q) || self.quantities.contains(&bare),
        }
    }
}

impl Currency {
    /// The ISO 4217 code: "EUR", "USD", "GBP".
    pub fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
            Currency::Gbp => "GBP",
        }
    }
}

impl fmt::Display for Quantity {
    /// "8 hours", "1 day", "37.5 hours", "25%", "1200 EUR", "42".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.milli / 1000, self.milli % 1000);
        let value = match frac {
            0 => whole.to_string(),
            _ => format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0')),
        };
        let word = match self.unit {
            None => return write!(f, "{value}"),
            Some(Unit::Percent) => return write!(f, "{value}%"),
            Some(Unit::Currency(c)) => return write!(f, "{value} {}", c.code()),
            Some(Unit::Minute) => "minute",
            Some(Unit::Hour) => "hour",
            Some(Unit::Day) => "day",
            Some(Unit::Week) => "week",
            Some(Unit::Month) => "month",
            Some(Unit::Year) => "year",
        };
        let plural = if self.milli == 1000 { "" } else { "s" };
        write!(f, "{value} {word}{plural}")
    }
}

/// A lexical unit of the text.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Digits as a number ("1,200", "37.5", "22nd"), with a unit glued on ("72h").
    Num { milli: i64, unit: Option<Unit> },
    /// Letters and digits starting with a letter ("FFP3", "v2.1"), or digits
    /// with letters that are no unit ("3D"); a possessive "'s" dropped.
    Word(String),
    /// Any other character that is not whitespace.
    Sym(char),
}

/// A token, with what precedes it: whitespace, a line break.
#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    spaced: bool,
    line_start: bool,
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = strip_citations(text).chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut spaced, mut line_start) = (0, true, true);
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            (i, spaced, line_start) = (i + 1, true, line_start || c == '\n');
            continue;
        }
        let (kind, next) = if c.is_ascii_digit() {
            number(&chars, i)
        } else if c.is_alphanumeric() {
            word(&chars, i)
        } else {
            (Kind::Sym(c), i + 1)
        };
        tokens.push(Token {
            kind,
            spaced,
            line_start,
        });
        (i, spaced, line_start) = (next, false, false);
    }
    tokens
}

/// The text with citation markers ("[1]", "[1, 2]") blanked: they are no facts.
fn strip_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let marker = after.find(']').filter(|&close| {
            let mut numbers = after[..close].split(',').map(str::trim);
            numbers.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if let Some(close) = marker {
            out.push(' ');
            rest = &after[close + 1..];
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn run_end(chars: &[char], start: usize, keep: impl Fn(&char) -> bool) -> usize {
    let run = chars[start..].iter().position(|c| !keep(c));
    run.map_or(chars.len(), |n| start + n)
}

/// A word from `start`: an identifier keeps its version number whole
/// ("v2.1"), and a possessive "'s" is dropped.
fn word(chars: &[char], start: usize) -> (Kind, usize) {
    let mut end = run_end(chars, start, |c| c.is_alphanumeric());
    while chars[start..end].iter().any(char::is_ascii_digit)
        && chars.get(end) == Some(&'.')
        && chars.get(end + 1).is_some_and(|c| c.is_alphanumeric())
    {
        end = run_end(chars, end + 1, |c| c.is_alphanumeric());
    }
    let text = chars[start..end].iter().collect();
    let possessive = matches!(chars.get(end), Some('\'' | '’'))
        && matches!(chars.get(end + 1), Some('s' | 'S'))
        && !chars.get(end + 2).is_some_and(|c| c.is_alphanumeric());
    (Kind::Word(text), if possessive { end + 2 } else { end })
}

/// A number from `start`: digits with thousands groups and a decimal part,
/// then an ordinal suffix or a glued unit; other letters make it an identifier.
fn number(chars: &[char], start: usize) -> (Kind, usize) {
    let digit = char::is_ascii_digit;
    let mut end = run_end(chars, start, digit);
    let mut digits: String = chars[start..end].iter().collect();
    while chars.get(end) == Some(&',') && run_end(chars, end + 1, digit) == end + 4 {
        digits.extend(&chars[end + 1..end + 4]);
        end += 4;
    }
    let mut frac = String::new();
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(digit) {
        let frac_end = run_end(chars, end + 1, digit);
        frac = chars[end + 1..frac_end.min(end + 4)].iter().collect();
        end = frac_end;
    }
    let suffix_end = run_end(chars, end, |c| c.is_alphanumeric());
    let suffix = chars[end..suffix_end]
        .iter()
        .collect::<String>()
        .to_lowercase();
    let unit = unit_word(&suffix);
    let plain = suffix.is_empty() || listed("st nd rd th", &suffix) || unit.is_some();
    match format!("{digits}{frac:0<3}").parse::<i64>() {
        Ok(milli) if plain => (Kind::Num { milli, unit }, suffix_end),
        // "3D", "9am", or too many digits for a number: an identifier.
        _ => (
            Kind::Word(chars[start..suffix_end].iter().collect()),
            suffix_end,
        ),
    }
}

fn unit_word(word: &str) -> Option<Unit> {
    Some(match word.to_lowercase().as_str() {
        "minute" | "minutes" | "min" | "mins" => Unit::Minute,
        "hour" | "hours" | "h" | "hr" | "hrs" => Unit::Hour,
        "day" | "days" => Unit::Day,
        "week" | "weeks" => Unit::Week,
        "month" | "months" => Unit::Month,
        "year" | "years" | "yr" | "yrs" => Unit::Year,
        "percent" | "pct" => Unit::Percent,
        "euro" | "euros" | "eur" => Unit::Currency(Currency::Eur),
        "dollar" | "dollars" | "usd" => Unit::Currency(Currency::Usd),
        "pound" | "pounds" | "gbp" => Unit::Currency(Currency::Gbp),
        _ => return None,
    })
}

/// A currency written before an amount: "€", "$", "£", "EUR", "USD", "GBP".
fn currency_prefix(token: &Token) -> Option<Currency> {
    match &token.kind {
        Kind::Sym('€') => Some(Currency::Eur),
        Kind::Sym('$') => Some(Currency::Usd),
        Kind::Sym('£') => Some(Currency::Gbp),
        Kind::Word(w) if w.len() == 3 => match unit_word(w) {
            Some(Unit::Currency(c)) => Some(c),
            _ => None,
        },
        _ => None,
    }
}

fn word_at(tokens: &[Token], i: usize) -> Option<&str> {
    match &tokens.get(i)?.kind {
        Kind::Word(w) => Some(w),
        _ => None,
    }
}

/// The token at `i` when no whitespace separates it from the one before.
fn joined(tokens: &[Token], i: usize) -> Option<&Kind> {
    tokens.get(i).filter(|t| !t.spaced).map(|t| &t.kind)
}

/// The quantities of the tokens, and which tokens they used (so that unit
/// and number words are not taken for names).
fn quantities(tokens: &[Token]) -> (Vec<Quantity>, Vec<bool>) {
    let (mut found, mut used, mut i) = (Vec::new(), vec![false; tokens.len()], 0);
    while i < tokens.len() {
        if let Some((quantities, end)) = quantity_at(tokens, i) {
            found.extend(quantities);
            used[i..end].fill(true);
            i = end;
        } else {
            i += 1;
        }
    }
    (found, used)
}

/// The quantities stated from token `i` (several for a range or a date,
/// sharing one unit), and the token after them.
fn quantity_at(tokens: &[Token], i: usize) -> Option<(Vec<Quantity>, usize)> {
    let amount_follows = matches!(tokens.get(i + 1).map(|t| &t.kind), Some(Kind::Num { .. }));
    let prefix = currency_prefix(tokens.get(i)?).filter(|_| amount_follows);
    let start = i + usize::from(prefix.is_some());
    let (milli, mut unit, mut end) = number_at(tokens, start)?;
    let article = word_at(tokens, start).is_some_and(|w| listed("one a an", &w.to_lowercase()));
    let lone = article && end == start + 1;
    let mut values = vec![milli];
    // "6–7 days", "1965-1976", "2024-03-12": numbers joined by dashes.
    while matches!(joined(tokens, end), Some(Kind::Sym('-' | '–')))
        && let Some(&Kind::Num { milli, unit: glued }) = joined(tokens, end + 1)
    {
        values.push(milli);
        (unit, end) = (glued, end + 2);
    }
    let attached = match prefix.map(Unit::Currency).or(unit) {
        Some(unit) => Some((unit, end)),
        None => unit_after(tokens, end),
    };
    // "one of the three": a lone "one", "a" or "an" counts only with a unit.
    if lone && attached.is_none() {
        return None;
    }
    let (unit, end) = attached.map_or((None, end), |(u, e)| (Some(u), e));
    let quantities = values.into_iter().map(|milli| Quantity { milli, unit });
    Some((quantities.collect(), end))
}

/// The number at token `i`, in digits or words: its value in thousandths,
/// the unit glued to it, and the token after it.
fn number_at(tokens: &[Token], i: usize) -> Option<(i64, Option<Unit>, usize)> {
    match tokens.get(i)?.kind {
        Kind::Num { milli, unit: None } => match word_at(tokens, i + 1).and_then(number_word) {
            // "1.5 million", "2 dozen"
            Some((Part::Hundred | Part::Big | Part::Dozen, scale)) => {
                Some((milli.saturating_mul(scale), None, i + 2))
            }
            _ => Some((milli, None, i + 1)),
        },
        Kind::Num { milli, unit } => Some((milli, unit, i + 1)),
        Kind::Word(_) => word_number(tokens, i).map(|(milli, end)| (milli, None, end)),
        Kind::Sym(_) => None,
    }
}

/// The kind of a number word, which decides what may follow it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Article,
    Ones,
    Teen,
    Tens,
    Hundred,
    Big,
    Dozen,
}

fn number_word(word: &str) -> Option<(Part, i64)> {
    let w = word.to_lowercase();
    let find = |list: &str| {
        list.split_whitespace()
            .position(|x| x == w)
            .map(|p| p as i64)
    };
    if let Some(p) = find(ONES) {
        return Some((Part::Ones, p));
    }
    if let Some(p) = find(TEENS) {
        return Some((Part::Teen, 10 + p));
    }
    if let Some(p) = find(TENS) {
        return Some((Part::Tens, 20 + 10 * p));
    }
    Some(match w.as_str() {
        "a" | "an" => (Part::Article, 1),
        "hundred" => (Part::Hundred, 100),
        "thousand" => (Part::Big, 1_000),
        "million" => (Part::Big, 1_000_000),
        "billion" => (Part::Big, 1_000_000_000),
        "dozen" => (Part::Dozen, 12),
        _ => return None,
    })
}

/// Whether a number word of kind `next` continues a phrase ending in `last`
/// ("twenty" "five", "two" "hundred") rather than starting another number.
fn follows(last: Option<Part>, next: Part) -> bool {
    use Part::*;
    match next {
        Article => last.is_none(),
        Ones => matches!(last, None | Some(Tens | Hundred | Big)),
        Teen | Tens => matches!(last, None | Some(Hundred | Big)),
        Hundred | Dozen => matches!(last, Some(Article | Ones | Teen | Tens)),
        Big => matches!(last, Some(Article | Ones | Teen | Tens | Hundred | Dozen)),
    }
}

/// A number in words from token `start` ("twenty-five", "a dozen", "one
/// hundred and twenty"): its value in thousandths and the token after it.
fn word_number(tokens: &[Token], start: usize) -> Option<(i64, usize)> {
    let (mut total, mut current, mut last, mut end) = (0i64, 0i64, None, start);
    let mut next = Some(start);
    while let Some(k) = next
        && let Some((part, value)) = word_at(tokens, k).and_then(number_word)
        && follows(last, part)
        && !(part == Part::Hundred && current >= 100)
    {
        match part {
            Part::Article => current = 1,
            Part::Ones | Part::Teen | Part::Tens => current += value,
            Part::Hundred | Part::Dozen => current = current.max(1) * value,
            Part::Big => (total, current) = (total.saturating_add(current.max(1) * value), 0),
        }
        (last, end, next) = (Some(part), k + 1, next_number_word(tokens, k + 1, part));
    }
    last.map(|_| (total.saturating_add(current).saturating_mul(1000), end))
}

/// Where a number phrase may go on after token `end`: the next word, a word
/// after a hyphen ("twenty-five"), or after "and" ("hundred and one").
fn next_number_word(tokens: &[Token], end: usize, last: Part) -> Option<usize> {
    let token = tokens.get(end)?;
    let and = matches!(last, Part::Hundred | Part::Big);
    match &token.kind {
        Kind::Sym('-') if !token.spaced && joined(tokens, end + 1).is_some() => Some(end + 1),
        Kind::Word(w) if and && w.eq_ignore_ascii_case("and") => Some(end + 1),
        Kind::Word(_) if token.spaced => Some(end),
        _ => None,
    }
}

/// The unit written after a number ending at token `k`: "%", "€", a unit
/// word, "-hour", "per cent", or one adjective and a unit ("calendar days").
fn unit_after(tokens: &[Token], k: usize) -> Option<(Unit, usize)> {
    let token = tokens.get(k)?;
    match &token.kind {
        Kind::Sym('%') => Some((Unit::Percent, k + 1)),
        // "37.5-hour week"
        Kind::Sym('-') if !token.spaced => match joined(tokens, k + 1) {
            Some(Kind::Word(w)) => unit_word(w).map(|u| (u, k + 2)),
            _ => None,
        },
        // "3,50 €", but not the "$" of "5 $10"
        Kind::Sym(_) if !matches!(joined(tokens, k + 1), Some(Kind::Num { .. })) => {
            currency_prefix(token).map(|c| (Unit::Currency(c), k + 1))
        }
        Kind::Word(w) => {
            let lower = w.to_lowercase();
            if let Some(unit) = unit_word(&lower) {
                return Some((unit, k + 1));
            }
            let next = word_at(tokens, k + 1)?;
            if lower == "per" && next.eq_ignore_ascii_case("cent") {
                return Some((Unit::Percent, k + 2));
            }
            let unit = unit_word(next).filter(|_| listed(UNIT_ADJECTIVES, &lower));
            unit.map(|u| (u, k + 2))
        }
        _ => None,
    }
}

/// The month (0-based) of an ISO date ("1942-03-27") starting at token `i`.
fn iso_month(tokens: &[Token], i: usize) -> Option<usize> {
    let [year, dash, month, dash2, day] = tokens.get(i..i + 5)? else {
        return None;
    };
    let whole = |t: &Token| match t.kind {
        Kind::Num { milli, unit: None } if milli % 1000 == 0 => Some(milli / 1000),
        _ => None,
    };
    let joined = [dash, month, dash2, day].iter().all(|t| !t.spaced);
    let dashes = [dash, dash2].iter().all(|t| t.kind == Kind::Sym('-'));
    let (year, month) = (whole(year)?, whole(month)?);
    let date = (1000..10_000).contains(&year) && whole(day).is_some();
    let month = usize::try_from(month).ok().filter(|m| (1..=12).contains(m));
    month.filter(|_| joined && dashes && date).map(|m| m - 1)
}

/// The month (0-based) a lowercased word names, "sept" and three-letter forms included.
fn month_of(word: &str) -> Option<usize> {
    let short =
        |m: &str| (word.len() == 3 && m.starts_with(word)) || (word == "sept" && m == "september");
    MONTHS
        .split_whitespace()
        .position(|m| m == word || short(m))
}

fn month_name(month: usize) -> String {
    MONTHS
        .split_whitespace()
        .nth(month)
        .unwrap_or_default()
        .to_string()
}

fn capitalised(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// Whether the word at token `i` is a proper name: an acronym anywhere, or
/// a capitalised word that does not open a sentence, or that does but is
/// followed by another capitalised word ("Michael Jackson wrote").
fn is_name(tokens: &[Token], i: usize, word: &str) -> bool {
    let lower = word.to_lowercase();
    let letters = word.chars().filter(|c| c.is_alphabetic());
    if letters.clone().count() < 2 || listed(NOT_NAMES, &lower) || listed(ABBREVIATIONS, &lower) {
        return false;
    }
    let next = match joined(tokens, i + 1) {
        Some(Kind::Sym('-')) => word_at(tokens, i + 2),
        _ => word_at(tokens, i + 1),
    };
    let pair = next.is_some_and(capitalised);
    letters.clone().all(char::is_uppercase)
        || (capitalised(word) && (pair || !opens_sentence(tokens, i)))
}

/// Whether token `i` opens a sentence, a line, a quotation or a clause after ": ".
fn opens_sentence(tokens: &[Token], i: usize) -> bool {
    let (token, Some(prev)) = (&tokens[i], i.checked_sub(1).map(|p| &tokens[p])) else {
        return true;
    };
    token.line_start
        || match prev.kind {
            Kind::Sym('.') => !abbreviated(tokens, i - 1),
            Kind::Sym('!' | '?') => true,
            Kind::Sym(':') => token.spaced,
            Kind::Sym('"' | '“' | '‘' | '\'' | '«' | '(' | '[') => !token.spaced,
            Kind::Sym('-' | '–' | '—' | '*' | '•' | '#' | '>') => prev.line_start,
            _ => false,
        }
}

/// Whether the '.' at token `dot` ends an abbreviation or an initial ("Dr.", "J.").
fn abbreviated(tokens: &[Token], dot: usize) -> bool {
    let word = dot.checked_sub(1).and_then(|p| word_at(tokens, p));
    let word = word.filter(|_| !tokens[dot].spaced).map(str::to_lowercase);
    word.is_some_and(|w| w.chars().count() == 1 || listed(ABBREVIATIONS, &w))
}

/// The lowercased parts of a name ("V2.1" gives "v2"; "Jean-Paul" comes as
/// two words already), or the month it names spelled out ("Sept").
fn name_parts(word: &str) -> Vec<String> {
    let lower = word.to_lowercase();
    if let Some(month) = month_of(&lower) {
        return vec![month_name(month)];
    }
    let parts = lower.split(|c: char| !c.is_alphanumeric());
    let named = parts.filter(|p| p.chars().count() >= 2 && p.chars().any(char::is_alphabetic));
    named.map(str::to_string).collect()
}

fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    first.unwrap_or_default() + chars.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sentence` states that `source` does not.
    fn missing(sentence: &str, source: &str) -> Vec<String> {
        extract(sentence).missing_from(&SourceFacts::of(source))
    }

    fn q(value: f64, unit: Option<Unit>) -> Quantity {
        let milli = (value * 1000.0) as i64;
        Quantity { milli, unit }
    }

    fn quantities(text: &str) -> Vec<Quantity> {
        extract(text).quantities
    }

    #[test]
    fn number_words_match_digits() {
        assert!(missing("2 weeks", "two weeks").is_empty());
        assert!(missing("two weeks", "2 weeks").is_empty());
        assert!(missing("8 years", "eight years after the last treatment").is_empty());
        assert!(missing("25", "twenty-five").is_empty());
        assert!(missing("5 days", "Up to five unused days").is_empty());
        assert!(missing("7 days", "more than seven calendar days").is_empty());
        assert_eq!(quantities("one hundred and twenty"), [q(120.0, None)]);
        assert_eq!(
            quantities("a dozen, three thousand"),
            [q(12.0, None), q(3e3, None)]
        );
        let (hour, week) = (Some(Unit::Hour), Some(Unit::Week));
        assert_eq!(quantities("a week, an hour"), [q(1.0, hour), q(1.0, week)]);
        assert_eq!(quantities("three-quarters, half"), [q(3.0, None)]);
    }

    #[test]
    fn lone_one_and_ordinal_words_are_not_numbers() {
        assert_eq!(quantities("one of the three"), [q(3.0, None)]);
        assert!(extract("a first and second draft").is_empty());
    }

    #[test]
    fn units_must_agree() {
        assert_eq!(missing("8 hours", "within 72 hours"), ["8 hours"]);
        assert_eq!(missing("25 days", "25 hours"), ["25 days"]);
        assert!(missing("25 days", "it is 25").is_empty());
        assert!(missing("25", "25 hours").is_empty());
        assert!(missing("37.5 hours", "a 37.5-hour week").is_empty());
        assert!(missing("72 hours", "72h").is_empty());
    }

    #[test]
    fn amounts_and_percentages_normalise() {
        let eur = Some(Unit::Currency(Currency::Eur));
        for text in ["1,200 euros", "1200 EUR", "€1,200", "EUR 1,200"] {
            assert_eq!(quantities(text), [q(1200.0, eur)], "{text}");
        }
        assert!(missing("€1,200", "1,200 euros").is_empty());
        assert!(missing("25 per cent", "25%").is_empty());
        assert!(missing("25 percent", "25 %").is_empty());
        assert_eq!(missing("£3 and $5.50", ""), ["3 GBP", "5.5 USD"]);
        assert_eq!(quantities("3 million euros"), [q(3e6, eur)]);
    }

    #[test]
    fn ranges_dates_and_ordinals_give_numbers() {
        let day = Some(Unit::Day);
        assert_eq!(quantities("6–7 days"), [q(6.0, day), q(7.0, day)]);
        assert_eq!(quantities("1965-1976"), [q(1965.0, None), q(1976.0, None)]);
        let date = [q(3.0, None), q(12.0, None), q(2024.0, None)];
        assert_eq!(quantities("on 2024-03-12"), date);
        assert_eq!(quantities("the 22nd, -5"), [q(5.0, None), q(22.0, None)]);
        assert!(missing("It was 1942-03-27.", "born 27 March 1942").is_empty());
        assert!(missing("born on 27 March 1942", "1942-03-27").is_empty());
    }

    #[test]
    fn identifiers_and_citation_markers_are_no_numbers() {
        let facts = extract("Wear an FFP3 mask, run SmolLM2 or v2.1 [1, 2].");
        assert!(facts.quantities.is_empty());
        assert_eq!(facts.names, ["ffp3", "smollm2"]);
        assert!(extract("Staff receive leave [1].").is_empty());
    }

    #[test]
    fn names_are_capitalised_words_past_the_sentence_start() {
        let names = |text| extract(text).names;
        assert!(names("Staff receive 25 days.").is_empty());
        assert_eq!(names("Michael Jackson's song"), ["jackson", "michael"]);
        let sartre = names("It was Jean-Paul Sartre, in Sept.");
        assert_eq!(sartre, ["jean", "paul", "sartre", "september"]);
        assert_eq!(
            names("Note: Staff ask Dr. Smith (GDPR) in EUR."),
            ["gdpr", "smith"]
        );
        assert!(names("I think The Source says Yes.").is_empty());
    }

    #[test]
    fn names_are_found_among_all_source_words() {
        let dpo = "The Data Protection Officer handles requests.";
        assert_eq!(extract(dpo).names, ["data", "officer", "protection"]);
        assert!(missing(dpo, "contact the data protection officer").is_empty());
        let bio = "Michael James Jackson (27 March 1942 – 30 August 2007)";
        assert!(missing("Michael Jackson was born in 1942.", bio).is_empty());
        let leave = "Staff receive 25 days of leave.";
        assert_eq!(missing("The capital is Canberra.", leave), ["Canberra"]);
    }

    #[test]
    fn sources_merge() {
        let mut window = SourceFacts::of("Staff receive 25 days.");
        let sentence = extract("Staff ask Jane within 8 hours.");
        assert_eq!(sentence.missing_from(&window), ["8 hours", "Jane"]);
        window.extend(&SourceFacts::of("jane answers within 8 hours."));
        assert!(sentence.missing_from(&window).is_empty());
    }

    #[test]
    fn text_without_facts_is_empty() {
        assert!(extract("").is_empty());
        assert!(extract("It is fine to ask your manager.").is_empty());
        assert_eq!(q(1.0, Some(Unit::Day)).to_string(), "1 day");
    }
}
