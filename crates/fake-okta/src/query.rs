//! Okta's `filter` / `search` expression language (SCIM-like):
//! `profile.login eq "x" and (status eq "ACTIVE" or lastUpdated gt "2014-01-01T00:00:00.000Z")`.
//!
//! Operators and `and`/`or` are case-insensitive; `and` binds tighter than `or`. `not`
//! and `ne` are not supported by Okta and are rejected like any malformed expression.

use chrono::DateTime;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Null,
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Sw,
    Co,
    Gt,
    Ge,
    Lt,
    Le,
    Pr,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp {
        attr: String,
        op: Op,
        value: Option<Lit>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Str(String),
}

fn tokenize(input: &str) -> Result<Vec<Tok>, ()> {
    let mut toks = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                toks.push(Tok::Open);
            }
            ')' => {
                chars.next();
                toks.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(()),
                        Some('"') => break,
                        Some('\\') => s.push(chars.next().ok_or(())?),
                        Some(c) => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                toks.push(Tok::Word(w));
            }
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or_expr(&mut self) -> Result<Expr, ()> {
        let mut left = self.and_expr()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, ()> {
        let mut left = self.primary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.primary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, ()> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or_expr()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(attr)) => {
                if attr.eq_ignore_ascii_case("not") {
                    return Err(());
                }
                self.pos += 1;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Word(op)) => match op.to_ascii_lowercase().as_str() {
                        "eq" => Op::Eq,
                        "sw" => Op::Sw,
                        "co" => Op::Co,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        "pr" => Op::Pr,
                        _ => return Err(()),
                    },
                    _ => return Err(()),
                };
                self.pos += 1;
                if op == Op::Pr {
                    return Ok(Expr::Cmp {
                        attr,
                        op,
                        value: None,
                    });
                }
                let value = match self.toks.get(self.pos).cloned() {
                    Some(Tok::Str(s)) => Lit::Str(s),
                    Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                        "true" => Lit::Bool(true),
                        "false" => Lit::Bool(false),
                        "null" => Lit::Null,
                        _ => Lit::Num(w.parse().map_err(|_| ())?),
                    },
                    _ => return Err(()),
                };
                self.pos += 1;
                Ok(Expr::Cmp {
                    attr,
                    op,
                    value: Some(value),
                })
            }
            _ => Err(()),
        }
    }
}

/// Parses an expression; `Err` means Okta's E0000031.
pub(crate) fn parse(input: &str) -> Result<Expr, ()> {
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Err(());
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or_expr()?;
    if p.pos != p.toks.len() {
        return Err(());
    }
    Ok(e)
}

/// True if every comparison passes `allowed(attr, op)`.
pub(crate) fn all_comparisons(expr: &Expr, allowed: &dyn Fn(&str, Op) -> bool) -> bool {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            all_comparisons(a, allowed) && all_comparisons(b, allowed)
        }
        Expr::Cmp { attr, op, .. } => allowed(attr, *op),
    }
}

/// Evaluates against a resource. `lookup` returns the attribute's value (arrays are
/// matched element-wise). `case_insensitive` is true for `search`, false for `filter`.
pub(crate) fn eval(
    expr: &Expr,
    lookup: &dyn Fn(&str) -> Option<Value>,
    case_insensitive: bool,
) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, lookup, case_insensitive) && eval(b, lookup, case_insensitive),
        Expr::Or(a, b) => eval(a, lookup, case_insensitive) || eval(b, lookup, case_insensitive),
        Expr::Cmp { attr, op, value } => {
            let actual = lookup(attr);
            let values: Vec<Value> = match actual {
                Some(Value::Array(items)) => items,
                Some(v) => vec![v],
                None => vec![],
            };
            match (op, value) {
                (Op::Pr, _) => values.iter().any(|v| !v.is_null()),
                (_, Some(Lit::Null)) => {
                    *op == Op::Eq && (values.is_empty() || values.iter().all(Value::is_null))
                }
                (_, Some(lit)) => values
                    .iter()
                    .any(|v| compare(v, *op, lit, case_insensitive)),
                (_, None) => false,
            }
        }
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compare(actual: &Value, op: Op, lit: &Lit, ci: bool) -> bool {
    let Some(actual) = as_text(actual) else {
        return false;
    };
    let expected = match lit {
        Lit::Str(s) => s.clone(),
        Lit::Bool(b) => b.to_string(),
        Lit::Num(n) => n.to_string(),
        Lit::Null => return false,
    };
    let (a, e) = if ci {
        (actual.to_lowercase(), expected.to_lowercase())
    } else {
        (actual.clone(), expected.clone())
    };
    let ordering = || {
        if let (Ok(x), Ok(y)) = (
            DateTime::parse_from_rfc3339(&actual),
            DateTime::parse_from_rfc3339(&expected),
        ) {
            return x.cmp(&y);
        }
        if let (Ok(x), Ok(y)) = (actual.parse::<f64>(), expected.parse::<f64>()) {
            return x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
        }
        a.cmp(&e)
    };
    match op {
        Op::Eq => match (actual.parse::<f64>(), expected.parse::<f64>(), lit) {
            (Ok(x), Ok(y), Lit::Num(_)) => x == y,
            _ => a == e,
        },
        Op::Sw => a.starts_with(&e),
        Op::Co => a.contains(&e),
        Op::Gt => ordering().is_gt(),
        Op::Ge => ordering().is_ge(),
        Op::Lt => ordering().is_lt(),
        Op::Le => ordering().is_le(),
        Op::Pr => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(attr: &str) -> Option<Value> {
        let user = json!({"status": "ACTIVE", "profile.login": "Isaac.Brock@example.com",
                          "lastUpdated": "2020-01-01T00:00:00.000Z"});
        user.get(attr).cloned()
    }

    #[test]
    fn parses_and_evaluates() {
        let e = parse(r#"profile.login eq "isaac.brock@example.com""#).unwrap();
        assert!(eval(&e, &lookup, true));
        assert!(!eval(&e, &lookup, false));
        let e = parse(r#"status EQ "ACTIVE" and (lastUpdated gt "2019-01-01T00:00:00.000Z" or status eq "STAGED")"#).unwrap();
        assert!(eval(&e, &lookup, false));
        let e = parse(r#"lastUpdated lt "2019-01-01T00:00:00.000Z""#).unwrap();
        assert!(!eval(&e, &lookup, false));
    }

    #[test]
    fn rejects_what_okta_rejects() {
        assert!(parse(r#"status ne "ACTIVE""#).is_err());
        assert!(parse(r#"not (status eq "ACTIVE")"#).is_err());
        assert!(parse(r#"status eq "ACTIVE"#).is_err());
        assert!(parse("status eq").is_err());
        assert!(parse("").is_err());
        assert!(parse(r#"(status eq "A""#).is_err());
    }
}
