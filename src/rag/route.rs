//! Which model tier answers: the cheapest first (or the second for the kinds
//! of question a small model rarely gets right), the next when too little of
//! an answer survives verification, and the quotes when nothing does.

use crate::config::QuestionKind;

use super::answer::CheckedSentence;

/// The kinds `question` is of.
pub fn kinds(question: &str) -> Vec<QuestionKind> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    let mut out = Vec::new();
    let comparative = words
        .iter()
        .any(|w| w.ends_with("er") && w.len() > 4 || matches!(*w, "more" | "less" | "first"));
    if has("compare")
        || has("compared")
        || has("difference")
        || has("both")
        || (has("or") && (has("which") || has("who")) && comparative)
    {
        out.push(QuestionKind::Comparison);
    }
    if names(question) >= 2 {
        out.push(QuestionKind::SeveralNames);
    }
    let explains = matches!(words.first(), Some(&"why"))
        || words.windows(2).any(|w| {
            w[0] == "how"
                && matches!(
                    w[1],
                    "does" | "do" | "did" | "is" | "are" | "can" | "should" | "would" | "to"
                )
        });
    if explains {
        out.push(QuestionKind::WhyHow);
    }
    out
}

/// Capitalised words after the first: a rough count of the names a question
/// mentions (runs of capitalised words count once).
fn names(question: &str) -> usize {
    let mut count = 0;
    let mut in_name = false;
    for (i, w) in question.split_whitespace().enumerate() {
        let capital = w.chars().next().is_some_and(char::is_uppercase);
        if i > 0 && capital && !in_name {
            count += 1;
        }
        in_name = i > 0 && capital;
    }
    count
}

/// The tier to start at, of `tiers` model tiers.
pub fn first_tier(question: &str, start_higher_for: &[QuestionKind], tiers: usize) -> usize {
    let higher = kinds(question).iter().any(|k| start_higher_for.contains(k));
    if higher && tiers > 1 { 1 } else { 0 }
}

/// Whether a tier's answer is enough: some sentence is supported and at
/// least `escalate_below` of its claims are (filler and declining are not claims).
pub fn enough(sentences: &[CheckedSentence], escalate_below: f32) -> bool {
    let supported = sentences.iter().filter(|s| s.supported).count();
    let claims = sentences.iter().filter(|s| s.is_claim()).count();
    supported > 0 && supported as f32 >= escalate_below * claims as f32
}

/// Of the tiers tried (in order), the one whose answer to show: the first
/// that was enough, else the one with the most supported sentences (the
/// higher tier on a tie); `None` when no sentence survived anywhere.
pub fn choose(runs: &[&[CheckedSentence]], escalate_below: f32) -> Option<usize> {
    if let Some(i) = runs.iter().position(|r| enough(r, escalate_below)) {
        return Some(i);
    }
    let supported = |r: &[CheckedSentence]| r.iter().filter(|s| s.supported).count();
    runs.iter()
        .enumerate()
        .filter(|(_, r)| supported(r) > 0)
        .max_by_key(|(i, r)| (supported(r), *i))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(supported: bool) -> CheckedSentence {
        CheckedSentence {
            text: "x".into(),
            supported,
            source: supported.then_some(1),
            similarity: 0.5,
            reason: None,
            tier: String::new(),
        }
    }

    #[test]
    fn question_kinds() {
        assert_eq!(
            kinds("Which is older, the Eiffel Tower or Big Ben?"),
            vec![QuestionKind::Comparison, QuestionKind::SeveralNames]
        );
        assert_eq!(
            kinds("Why are gloves single use?"),
            vec![QuestionKind::WhyHow]
        );
        assert_eq!(
            kinds("How does hand hygiene work?"),
            vec![QuestionKind::WhyHow]
        );
        assert!(kinds("How many days of annual leave do full-time staff get?").is_empty());
        assert!(kinds("How long must records be kept?").is_empty());
    }

    #[test]
    fn start_higher_only_when_a_higher_tier_exists() {
        let all = [QuestionKind::WhyHow];
        assert_eq!(first_tier("Why wash hands?", &all, 2), 1);
        assert_eq!(first_tier("Why wash hands?", &all, 1), 0);
        assert_eq!(first_tier("Why wash hands?", &[], 2), 0);
        assert_eq!(first_tier("When is a fit note needed?", &all, 2), 0);
    }

    #[test]
    fn escalation_and_choice() {
        let (yes, no) = (sentence(true), sentence(false));
        assert!(enough(std::slice::from_ref(&yes), 0.5));
        assert!(!enough(&[], 0.5));
        assert!(!enough(&[no.clone(), no.clone(), yes.clone()], 0.5));
        assert!(enough(&[no.clone(), yes.clone()], 0.5));
        let filler = CheckedSentence {
            reason: Some(crate::rag::answer::ADDS_NOTHING.into()),
            ..no.clone()
        };
        assert!(enough(&[filler.clone(), filler, yes.clone()], 0.6));
        let weak = [no.clone(), no.clone(), yes.clone()];
        let none = [no.clone()];
        let good = [yes.clone()];
        assert_eq!(choose(&[&weak, &good], 0.5), Some(1));
        assert_eq!(choose(&[&weak, &none], 0.5), Some(0));
        assert_eq!(choose(&[&none, &none], 0.5), None);
        assert_eq!(choose(&[&good, &weak], 0.5), Some(0));
    }
}
