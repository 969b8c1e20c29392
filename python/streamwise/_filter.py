"""The run filter language of track.search_runs, compiled to SQL.

    metrics.auc > 0.7 AND (params.model = 'gbdt' OR params.model = 'pa')
    tags.team = "ads" AND NOT status = 'FAILED'
    params.C IN (0.1, 1) AND metrics.`val/auc` >= 0.8 AND name LIKE 'pa%'

Fields are ``metrics.KEY`` (the last value logged), ``params.KEY``,
``tags.KEY`` and the run attributes (``run_id``, ``name``, ``status``,
``experiment``, ``start_time``, ``end_time``, ``user``, ``host``,
``git_commit``, ``seed``). A key with unusual characters goes in backquotes.
Operators: ``= == != <> < <= > >= LIKE``, ``IN (...)``, ``IS [NOT] NULL``;
``AND`` binds tighter than ``OR``; ``NOT`` and parentheses as usual. A run
without the metric or param a comparison names does not match it. Values are
bound as SQL parameters, never pasted into the query. A syntax error says
where it is, with a caret under the position.
"""
import re

from . import _sw

ATTRIBUTES = {
    "run_id": "r.run_id", "name": "r.name", "status": "r.status",
    "experiment": "e.name", "start_time": "r.start_time",
    "end_time": "r.end_time", "user": "r.user_name", "host": "r.host",
    "git_commit": "r.git_commit", "seed": "r.seed",
    "parent_id": "r.parent_id",
}
TABLES = {"metrics": ("metrics", "last_value"), "params": ("params", "value"),
          "tags": ("tags", "value")}
OPS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=",
       ">": ">", ">=": ">="}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op><=|>=|==|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<field>(?:metrics|params|tags|attributes|attribute|run)\.
               (?:`[^`]+`|[\w./:-]+))
  | (?P<word>[A-Za-z_]\w*)
""", re.VERBOSE)


class FilterError(_sw.InvalidArgument):
    """A filter or order_by that does not parse."""


def _fail(text, pos, what):
    raise FilterError(f"filter: {what} at position {pos}\n    {text}\n"
                      f"    {' ' * pos}^")


def _tokens(text):
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            _fail(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


#: How each store's SQL spells what the two databases spell differently:
#: a text made a number (SQLite's CAST gives 0 for "abc", PostgreSQL's
#: fails the whole query, so its store defines sw_num, NULL for "abc"), and
#: a LIKE that ignores ASCII case as SQLite's does.
DIALECTS = {
    "sqlite": {"num": "CAST({} AS REAL)", "like": "LIKE"},
    "postgresql": {"num": "sw_num({})", "like": "ILIKE"},
}


def _field_sql(kind, tok, text, pos, numeric, args, dialect="sqlite"):
    """SQL for a field token, appending its bound names to args."""
    if kind == "word":
        col = ATTRIBUTES.get(tok.lower())
        if col is None:
            _fail(text, pos, f"unknown field {tok!r} (use metrics.X, "
                             f"params.X, tags.X or one of "
                             f"{', '.join(sorted(ATTRIBUTES))})")
        return col
    prefix, key = tok.split(".", 1)
    if key.startswith("`"):
        key = key[1:-1]
    if prefix in ("attributes", "attribute", "run"):
        return _field_sql("word", key, text, pos, numeric, args, dialect)
    table, column = TABLES[prefix]
    args.append(key)
    sql = (f"(SELECT x.{column} FROM {table} x WHERE x.run_id = r.run_id "
           f"AND x.key = ?)")
    if numeric and table != "metrics":
        sql = DIALECTS[dialect]["num"].format(sql)
    return sql


def _value(tok):
    kind, text, _ = tok
    if kind == "num":
        return float(text) if any(c in text for c in ".eE") else int(text)
    q = text[0]
    return text[1:-1].replace(q + q, q)


class _Parser:
    def __init__(self, text, dialect="sqlite"):
        self.text = text
        self.dialect = dialect
        self.toks = _tokens(text)
        self.i = 0
        self.args = []

    def peek(self, k=0):
        return self.toks[self.i + k]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def keyword(self, word):
        kind, text, _ = self.peek()
        if kind == "word" and text.upper() == word:
            self.i += 1
            return True
        return False

    def expect(self, text_wanted, what):
        kind, text, pos = self.take()
        if text != text_wanted:
            _fail(self.text, pos, f"expected {what}, found "
                                  f"{text or 'the end'!r}")

    def parse(self):
        sql = self.or_()
        kind, text, pos = self.peek()
        if kind != "end":
            _fail(self.text, pos, f"expected AND, OR or the end, found "
                                  f"{text!r}")
        return sql, self.args

    def or_(self):
        parts = [self.and_()]
        while self.keyword("OR"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_(self):
        parts = [self.not_()]
        while self.keyword("AND"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_(self):
        if self.keyword("NOT"):
            return f"(NOT {self.not_()})"
        kind, text, pos = self.peek()
        if text == "(":
            self.take()
            sql = self.or_()
            self.expect(")", "')'")
            return sql
        return self.comparison()

    def comparison(self):
        kind, field, fpos = self.take()
        if kind not in ("field", "word") or field.upper() in ("AND", "OR",
                                                              "NOT"):
            _fail(self.text, fpos, f"expected a field such as metrics.auc, "
                                   f"found {field or 'the end'!r}")
        okind, op, opos = self.peek()
        if self.keyword("IS"):
            neg = self.keyword("NOT")
            if not self.keyword("NULL"):
                _fail(self.text, self.peek()[2], "expected NULL after IS")
            col = self.field(kind, field, fpos, False)
            return f"({col} IS {'NOT ' if neg else ''}NULL)"
        if self.keyword("IN"):
            self.expect("(", "'(' after IN")
            values = [self.value()]
            while self.peek()[1] == ",":
                self.take()
                values.append(self.value())
            self.expect(")", "')' closing the IN list")
            numeric = all(isinstance(v, (int, float)) for v in values)
            col = self.field(kind, field, fpos, numeric)
            self.args.extend(values)
            return f"({col} IN ({', '.join('?' * len(values))}))"
        if self.keyword("LIKE"):
            v = self.value()
            if not isinstance(v, str):
                _fail(self.text, opos, "LIKE needs a quoted pattern")
            col = self.field(kind, field, fpos, False)
            self.args.append(v)
            return f"({col} {DIALECTS[self.dialect]['like']} ?)"
        if okind != "op":
            _fail(self.text, opos, f"expected a comparison (=, !=, <, <=, >, "
                                   f">=, LIKE, IN, IS) after {field!r}, found "
                                   f"{op or 'the end'!r}")
        self.take()
        v = self.value()
        col = self.field(kind, field, fpos, isinstance(v, (int, float)))
        self.args.append(v)
        return f"({col} {OPS[op]} ?)"

    def field(self, kind, field, pos, numeric):
        return _field_sql(kind, field, self.text, pos, numeric, self.args,
                          self.dialect)

    def value(self):
        tok = self.take()
        if tok[0] not in ("num", "str"):
            _fail(self.text, tok[2], f"expected a number or a quoted string, "
                                     f"found {tok[1] or 'the end'!r}")
        return _value(tok)


def compile_filter(text, dialect="sqlite"):
    """(SQL boolean expression over runs r / experiments e, arguments)."""
    if text is None or not text.strip():
        return "1 = 1", []
    return _Parser(text, dialect).parse()


def compile_order(items):
    """ORDER BY terms for ["metrics.auc DESC", "start_time", ...]."""
    terms, args = [], []
    for item in items or []:
        p = _Parser(item)
        kind, field, pos = p.take()
        if kind not in ("field", "word"):
            _fail(item, pos, "expected a field to order by")
        direction = "ASC"
        if p.keyword("DESC"):
            direction = "DESC"
        else:
            p.keyword("ASC")
        if p.peek()[0] != "end":
            _fail(item, p.peek()[2], "expected ASC, DESC or the end")
        bound = []
        col = _field_sql(kind, field, item, pos, False, bound)
        # Missing values sort last whichever the direction (portable form
        # of NULLS LAST); the field appears twice, so do its arguments.
        terms.append(f"({col} IS NULL), {col} {direction}")
        args.extend(bound * 2)
    terms.append("r.start_time DESC")
    return ", ".join(terms), args
