"""A small executable model of how Traefik v3 reads and evaluates router rules.

Traefik hands a rule to vulcand/predicate, which parses it with Go's
``go/parser.ParseExpr``; so a rule is lexed by Go's scanner:

- the source is UTF-8 bytes; NUL, invalid UTF-8 and a byte order mark (U+FEFF)
  anywhere but at offset 0 are scanner errors, even inside string literals;
- a backtick string is a Go raw string: it ends at the very next backtick, has
  no escapes, and carriage returns inside it are discarded;
- ``&&`` binds tighter than ``||``; parentheses group; ``!`` negates.

Only the matchers the core emits are modelled: ``Host`` (ASCII only, compared
case-insensitively), ``Path`` (equality) and ``PathPrefix`` (string prefix),
both against the percent-decoded request path and both requiring an argument
that starts with ``/``. Anything else — a double-quoted string, another
operator, an unknown matcher — is a :class:`RuleError`, so a property that
compares the parse with an expected tree fails loudly on any injection.
"""

from __future__ import annotations

from dataclasses import dataclass


class RuleError(ValueError):
    """The rule would not parse (or not build) in Traefik."""


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class And:
    left: object
    right: object


@dataclass(frozen=True)
class Or:
    left: object
    right: object


@dataclass(frozen=True)
class Not:
    operand: object


_BOM = "\ufeff"
_MATCHERS = {"Host", "HostRegexp", "Path", "PathPrefix"}


def tokenize(rule: str) -> list[tuple[str, str]]:
    """Go-scanner tokens of a rule: (kind, text); kinds IDENT STRING OP."""
    try:
        rule.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RuleError(f"rule is not valid UTF-8: {e}") from None
    # The Go scanner reports these wherever they occur, strings included.
    for offset, ch in enumerate(rule):
        if ch == "\0":
            raise RuleError("illegal character NUL")
        if ch == _BOM and offset > 0:
            raise RuleError("illegal byte order mark")
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(rule)
    if rule.startswith(_BOM):
        i = 1
    while i < n:
        ch = rule[i]
        if ch in " \t":
            i += 1
        elif ch == "`":
            end = rule.find("`", i + 1)
            if end < 0:
                raise RuleError(f"raw string literal not terminated at {i}")
            tokens.append(("STRING", rule[i + 1 : end].replace("\r", "")))
            i = end + 1
        elif rule.startswith("||", i) or rule.startswith("&&", i):
            tokens.append(("OP", rule[i : i + 2]))
            i += 2
        elif ch in "()!,":
            tokens.append(("OP", ch))
            i += 1
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i
            while j < n and rule[j].isascii() and (rule[j].isalnum() or rule[j] == "_"):
                j += 1
            tokens.append(("IDENT", rule[i:j]))
            i = j
        else:
            # double-quoted strings, newlines (semicolon insertion), other
            # operators: nothing the core emits, so all count as failures
            raise RuleError(f"unexpected {ch!r} at {i} in {rule!r}")
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, text: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (text is not None and tok[1] != text):
            raise RuleError(f"expected {text or kind}, got {tok!r}")
        self.pos += 1
        return tok[1]

    def at_op(self, text: str) -> bool:
        return self.peek() == ("OP", text)

    def expr(self):
        node = self.conjunction()
        while self.at_op("||"):
            self.pos += 1
            node = Or(node, self.conjunction())
        return node

    def conjunction(self):
        node = self.unary()
        while self.at_op("&&"):
            self.pos += 1
            node = And(node, self.unary())
        return node

    def unary(self):
        if self.at_op("!"):
            self.pos += 1
            return Not(self.unary())
        if self.at_op("("):
            self.pos += 1
            node = self.expr()
            self.take("OP", ")")
            return node
        name = self.take("IDENT")
        self.take("OP", "(")
        args = [self.take("STRING")]
        while self.at_op(","):
            self.pos += 1
            args.append(self.take("STRING"))
        self.take("OP", ")")
        return _build_matcher(name, tuple(args))


def _build_matcher(name: str, args: tuple[str, ...]) -> Call:
    if name not in _MATCHERS:
        raise RuleError(f"unsupported matcher {name}")
    if len(args) != 1:
        raise RuleError(f"{name} takes one argument, got {len(args)}")
    (arg,) = args
    if name == "Host":
        if not arg or not arg.isascii():
            raise RuleError(f"invalid value {arg!r} for Host matcher")
    elif name == "HostRegexp":
        host_pattern(arg)
    elif not arg.startswith("/"):
        raise RuleError(f"path {arg!r} does not start with a '/'")
    return Call(name, args)


def host_pattern(regexp: str) -> tuple[str, str]:
    """(start, domain part) of a ``HostRegexp`` of the form
    ``^start[^.]*domain$`` with metacharacters escaped, as the route tree
    writes it: a host's first label begins with ``start`` and the rest of the
    host is exactly ``domain`` (``.hub.example``, or empty). Any other regular
    expression is outside the model: RuleError."""
    if not (regexp.startswith("^") and regexp.endswith("$") and regexp.count("[^.]*") == 1):
        raise RuleError(f"HostRegexp {regexp!r} is not ^start[^.]*domain$")
    start, domain = regexp[1:-1].split("[^.]*")
    return _literal(start, regexp), _literal(domain, regexp)


def host_matches(regexp: str, host: str) -> bool:
    start, domain = host_pattern(regexp)
    host = host.lower()
    middle = host[len(start) : len(host) - len(domain)]
    return (
        host.startswith(start)
        and host.endswith(domain)
        and len(host) >= len(start) + len(domain)
        and "." not in middle
    )


def _literal(escaped: str, regexp: str) -> str:
    literal, i = [], 0
    while i < len(escaped):
        ch = escaped[i]
        if ch == "\\" and i + 1 < len(escaped) and not escaped[i + 1].isalnum():
            literal.append(escaped[i + 1])
            i += 2
        elif ch in ".^$*+?()[]{}|\\":
            raise RuleError(f"HostRegexp {regexp!r}: unescaped {ch!r} is outside the model")
        else:
            literal.append(ch)
            i += 1
    return "".join(literal)


def parse_rule(rule: str):
    """The expression tree Traefik would build from ``rule``, or RuleError."""
    parser = _Parser(tokenize(rule))
    tree = parser.expr()
    if parser.peek() is not None:
        raise RuleError(f"unexpected {parser.peek()!r} after the expression")
    return tree


def evaluate(tree, host: str, path: str) -> bool:
    """Does a request for ``host`` with percent-decoded ``path`` match?"""
    if isinstance(tree, Or):
        return evaluate(tree.left, host, path) or evaluate(tree.right, host, path)
    if isinstance(tree, And):
        return evaluate(tree.left, host, path) and evaluate(tree.right, host, path)
    if isinstance(tree, Not):
        return not evaluate(tree.operand, host, path)
    (arg,) = tree.args
    if tree.name == "Host":
        return host.lower() == arg.lower()
    if tree.name == "HostRegexp":
        return host_matches(arg, host)
    if tree.name == "Path":
        return path == arg
    return path.startswith(arg)


def matches(rule: str, host: str, path: str) -> bool:
    return evaluate(parse_rule(rule), host, path)
