//! The source positions' unit tests: positioned errors, decoding, choices.

use super::*;

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Item {
    name: String,
    weight: u16,
}

#[test]
fn every_bad_item_is_reported_with_its_position() {
    let text = "items:\n  - name: a\n    weight: 1\n  - name: b\n    weight: many\n  - name: c\n    colour: red\n";
    let doc = Document::parse("t.yaml", text).unwrap();
    let mut errors = Errors::default();
    let items: Vec<(String, Item)> = doc.decode_each("items", &doc.root["items"], &mut errors);
    assert_eq!(items.len(), 1);
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert_eq!(errors.0[0].path, "items[1].weight");
    assert_eq!((errors.0[0].line, errors.0[0].column), (5, 13));
    assert_eq!(errors.0[1].path, "items[2].colour");
    assert_eq!(errors.0[1].line, 7);
    assert!(
        errors.0[1].message.contains("unknown field `colour`"),
        "{}",
        errors.0[1]
    );
    assert!(
        errors
            .to_string()
            .starts_with("t.yaml:5:13: items[1].weight: ")
    );
}

#[derive(serde::Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
enum Colour {
    #[default]
    Red,
    Green,
    Blue,
}

impl Choices for Colour {}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Paint {
    #[serde(default)]
    colour: Choice<Colour>,
    coats: u8,
}

#[test]
fn a_choice_is_refused_with_its_names_and_hides_nothing() {
    let text = "paints:\n  - {colour: green, coats: 1}\n  - {coats: 2}\n  - {colour: mauve, coats: 3}\n  - {colour: [red], coats: 1}\n";
    let doc = Document::parse("t.yaml", text).unwrap();
    let mut errors = Errors::default();
    let paints: Vec<(String, Paint)> = doc.decode_each("paints", &doc.root["paints"], &mut errors);
    // A value that is not text at all fails the item, as a `String` field would.
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(
        errors.0[0].to_string(),
        "t.yaml:5:14: paints[3].colour: invalid type: sequence, expected a string"
    );
    // A refused name leaves the rest of the item decoded, and is reported where it is.
    let colours: Vec<Option<Colour>> = paints
        .iter()
        .map(|(p, x)| doc.choice(&format!("{p}.colour"), &x.colour, &mut errors))
        .collect();
    assert_eq!(colours, [Some(Colour::Green), Some(Colour::Red), None]);
    assert_eq!(paints[2].1.coats, 3);
    assert_eq!(
        errors.0[1].to_string(),
        "t.yaml:4:14: paints[2].colour: expected `red`, `green` or `blue`"
    );
    assert_eq!(listed(&["a", "b"], ""), "a or b");
    assert_eq!(listed(&["a"], "`"), "`a`");
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(10_000);
    let shown = quote(&long).to_string();
    assert_eq!(shown, format!("\"{}\"…", "x".repeat(QUOTED_MAX)));
    assert_eq!(quote("a\nb").to_string(), "\"a\\nb\"");
    // serde's own quoting, in both styles, and escapes counted as one character.
    let msg = format!("invalid type: string {long:?}, expected u16");
    assert_eq!(
        bound_message(&msg),
        format!("invalid type: string {shown}, expected u16")
    );
    let msg = format!("unknown field `{long}`, expected `name`");
    assert_eq!(
        bound_message(&msg),
        format!(
            "unknown field `{}`…, expected `name`",
            "x".repeat(QUOTED_MAX)
        )
    );
    let escaped = format!("{:?}", "\u{1}".repeat(100));
    let cut = bound_message(&escaped);
    assert_eq!(cut, format!("{}…", quote(&"\u{1}".repeat(QUOTED_MAX))));
    // Short messages are untouched; an unquoted run is bounded as a whole.
    assert_eq!(bound_message("bad \"x\" and `y`"), "bad \"x\" and `y`");
    assert_eq!(
        bound_message(&long).chars().count(),
        MESSAGE_MAX + 1,
        "cut, with the mark"
    );
    let doc = Document::parse("t.yaml", "a: 1\n").unwrap();
    let e = doc.error(&format!("a.{long}"), format!("{long:?} is wrong"));
    assert!(
        e.to_string().len() < 2 * MESSAGE_MAX,
        "{}",
        e.to_string().len()
    );
}

#[test]
fn syntax_error_has_a_position() {
    let err = Document::parse("bad.yaml", "a: [1, 2\nb: 3\n")
        .err()
        .unwrap();
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].line >= 1, "{err}");
    assert!(err.0[0].message.starts_with("YAML syntax"));
}
