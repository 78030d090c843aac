"""Generate ``docs/api.md`` from the docstrings of mibpcert's public objects.

Usage::

    python docs/gen_api.py [--out docs/api.md]

The public objects of a module are its ``__all__`` or, without one, the names it defines itself
that do not start with an underscore. Every class and function is documented once, in the listed
module closest to where it is defined (``mibpcert.threat.model.ThreatModel`` under
``mibpcert.threat``); other modules that re-export it link there. Docstrings are reST-flavoured;
the few constructs they use (``literal``, :role:`target`, ``::`` blocks and Google-style
``Attributes:`` sections) are converted to Markdown.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

MODULES = (
    "mibpcert",
    "mibpcert.vocab",
    "mibpcert.data",
    "mibpcert.domains",
    "mibpcert.domains.interval",
    "mibpcert.domains.program",
    "mibpcert.domains.builder",
    "mibpcert.threat",
    "mibpcert.ops",
    "mibpcert.ops.affine",
    "mibpcert.ops.relu",
    "mibpcert.ops.loss",
    "mibpcert.ops.targets",
    "mibpcert.ops.hinge",
    "mibpcert.ops.bce",
    "mibpcert.ops.ce",
    "mibpcert.ops.mse",
    "mibpcert.ops.margin",
    "mibpcert.ops.sgd",
    "mibpcert.ops.clip",
    "mibpcert.model",
    "mibpcert.model.prefix",
    "mibpcert.model.torch_io",
    "mibpcert.problem",
    "mibpcert.bounds",
    "mibpcert.bounds.ops",
    "mibpcert.methods",
    "mibpcert.methods.base",
    "mibpcert.methods.agt",
    "mibpcert.methods.mibp",
    "mibpcert.methods.exact",
    "mibpcert.methods.exact_margins",
    "mibpcert.methods.exact_split",
    "mibpcert.methods.tightening",
    "mibpcert.attacks",
    "mibpcert.attacks.linearized",
    "mibpcert.encode",
    "mibpcert.encode.step",
    "mibpcert.encode.unroll",
    "mibpcert.encode.forms",
    "mibpcert.encode.objectives",
    "mibpcert.encode.margin",
    "mibpcert.encode.poison",
    "mibpcert.solvers",
    "mibpcert.solvers.results",
    "mibpcert.solvers.tasks",
    "mibpcert.parallel",
    "mibpcert.certify",
    "mibpcert.certify.mip",
    "mibpcert.certify.plots",
    "mibpcert.pipeline",
    "mibpcert.sweep",
    "mibpcert.config",
)
SECTIONS = ("Attributes:", "Args:", "Arguments:", "Parameters:", "Returns:", "Raises:")
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- docstrings


def _inline(text: str) -> str:
    """reST inline markup -> Markdown. ``text`` may hold several lines of one paragraph: a
    literal or role may wrap (``on_solves(done,`` / ``total)``); its line breaks are kept."""
    text = re.sub(r":[\w:]+:`~?([^`]+)`", lambda m: f"`{m.group(1)}`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return text


def _section_items(lines: list[str]) -> list[str]:
    """Google-style ``name: text`` items (indented, with deeper continuation lines) -> bullets."""
    items: list[str] = []
    base = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    for ln in lines:
        if not ln.strip():
            continue
        indent = len(ln) - len(ln.lstrip())
        body = ln.strip()
        if indent <= base or not items:
            name, sep, rest = body.partition(":")
            if sep and re.fullmatch(r"\w+(, \w+)*", name.strip()):
                names = ", ".join(f"`{n.strip()}`" for n in name.split(","))
                items.append(f"- {names}:{rest}")
            else:
                items.append(f"- {body}")
        else:
            items[-1] += " " + body
    return [_inline(i) for i in items]


_TABLE_BORDER = re.compile(r"^=+( +=+)+$")


def _simple_table(lines: list[str], i: int) -> tuple[list[str], int]:
    """A reST simple table starting at border line ``i`` -> (Markdown rows, index after it)."""
    border = lines[i]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]

    def cells(line: str) -> list[str]:
        out = []
        for k, (a, _end) in enumerate(spans):
            end = len(line) if k == len(spans) - 1 else spans[k + 1][0]
            out.append(_inline(line[a:end].strip()).replace("|", "\\|"))
        return out

    rows: list[list[str]] = []
    borders = 1
    j = i + 1
    while j < len(lines) and lines[j].strip():
        if _TABLE_BORDER.match(lines[j].strip()):
            borders += 1
            j += 1
            if borders == 3:
                break
            continue
        rows.append(cells(lines[j]))
        j += 1
    if not rows:
        return [], i + 1
    md = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(spans)]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return md, j


def md_doc(doc: str | None) -> str:
    """A cleaned docstring as Markdown.

    Plain text is converted a paragraph at a time (not line by line), so inline markup that
    wraps onto the next line comes out whole.
    """
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    para: list[str] = []  # plain lines of the current paragraph

    def flush() -> None:
        if para:
            out.extend(_inline("\n".join(para)).split("\n"))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if _TABLE_BORDER.match(stripped):
            table, j = _simple_table(lines, i)
            if table:
                flush()
                out += [""] + table + [""]
                i = j
                continue
        if stripped in SECTIONS:
            flush()
            j = i + 1
            block = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
                block.append(lines[j])
                j += 1
            out += [f"**{stripped[:-1]}**", ""] + _section_items(block) + [""]
            i = j
            continue
        if stripped.endswith("::"):
            if stripped[:-2].rstrip():
                para.append(line.rstrip()[:-1])  # "Example::" -> "Example:"
            flush()
            j = i + 1
            block = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            code = inspect.cleandoc("\n".join(block))
            lang = "python" if re.search(r"\bimport\b|\w\(", code) else "text"
            out += ["", f"```{lang}", code, "```", ""]
            i = j
            continue
        if stripped:
            para.append(line)
        else:
            flush()
            out.append(line)
        i += 1
    flush()
    return "\n".join(out).strip()


# ----------------------------------------------------------------------------- objects


def attribute_docs(module) -> dict[str, str]:
    """Docstrings written as a string literal right after a module-level assignment."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    docs[t.id] = nxt.value.value
    return docs


def _find_attr_doc(name: str, obj) -> str | None:
    """The attribute docstring of ``name`` in the mibpcert module that defines this value."""
    for modname, mod in sorted(sys.modules.items()):
        if modname.startswith("mibpcert") and getattr(mod, name, None) is obj:
            doc = attribute_docs(mod).get(name)
            if doc:
                return doc
    return None


def public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    out = []
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        defined_here = getattr(obj, "__module__", module.__name__) == module.__name__
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not defined_here:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) and name not in _assigned(module):
            continue
        out.append(name)
    return out


def _assigned(module) -> set[str]:
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def home_module(obj) -> str | None:
    """The listed module closest to where ``obj`` is defined (longest prefix)."""
    where = getattr(obj, "__module__", None)
    if not where:
        return None
    best = None
    for m in MODULES:
        if (where == m or where.startswith(m + ".")) and (best is None or len(m) > len(best)):
            best = m
    return best


def anchor(module: str, name: str = "") -> str:
    """HTML anchor of a module (no name) or of one of its objects."""
    full = f"{module}.{name}" if name else module
    return full.replace(".", "-").replace("_", "-").lower()


def _annotation(ann) -> str:
    return ann if isinstance(ann, str) else inspect.formatannotation(ann)


def signature(obj, drop_first: bool = False) -> str:
    """``(a: int = 1, *, b: str = 'x') -> T`` with string annotations shown unquoted."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = list(sig.parameters.values())
    if drop_first and params:
        params = params[1:]
    parts: list[str] = []
    star_done = False
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if p.kind is p.VAR_POSITIONAL:
            star_done = True
            text = f"*{p.name}"
        elif p.kind is p.VAR_KEYWORD:
            text = f"**{p.name}"
        else:
            text = p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            default = "<factory>" if repr(p.default) == "<factory>" else repr(p.default)
            text += f" = {default}" if p.annotation is not p.empty else f"={default}"
        parts.append(text)
    out = f"({', '.join(parts)})"
    if sig.return_annotation is not sig.empty and sig.return_annotation not in (None, "None"):
        out += f" -> {_annotation(sig.return_annotation)}"
    return out


def _members(cls) -> list[tuple[str, object]]:
    """Public members defined in ``cls`` itself (methods, class/static methods, properties)."""
    out = []
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, property) or inspect.isfunction(raw):
            out.append((name, raw))
        elif isinstance(raw, (classmethod, staticmethod)):
            out.append((name, raw))
    return out


def doc_class(name: str, cls, module: str) -> list[str]:
    kind = "dataclass" if dataclasses.is_dataclass(cls) else "class"
    if getattr(cls, "_is_protocol", False):
        kind = "protocol"
    bases = [b.__name__ for b in cls.__bases__ if b is not object and b.__name__ != "Protocol"]
    if issubclass(cls, BaseException):
        kind = "exception"
    lines = [f'<a id="{anchor(module, name)}"></a>', f"### `{name}` ({kind})", ""]
    if kind == "protocol":
        lines += ["```python", f"class {name}(Protocol)", "```", ""]
    elif kind != "exception":
        lines += ["```python", f"{name}{signature(cls)}", "```", ""]
    if bases:
        lines += [f"Bases: {', '.join(f'`{b}`' for b in bases)}", ""]
    raw_doc = cls.__doc__ or ""
    autogenerated = dataclasses.is_dataclass(cls) and raw_doc.startswith(f"{name}(")
    doc = md_doc(None if autogenerated else raw_doc)
    if doc:
        lines += [doc, ""]
    for mname, raw in _members(cls):
        if isinstance(raw, property):
            head = f"- **`{mname}`** (property)"
            mdoc = md_doc(raw.__doc__)
        else:
            func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
            tag = " (classmethod)" if isinstance(raw, classmethod) else ""
            tag = " (staticmethod)" if isinstance(raw, staticmethod) else tag
            sig = signature(func, drop_first=not isinstance(raw, staticmethod))
            head = f"- **`{mname}{sig}`**{tag}"
            mdoc = md_doc(func.__doc__)
        if mdoc:
            indented = "\n".join(("  " + ln) if ln else "" for ln in mdoc.splitlines())
            lines += [head, "", indented, ""]
        else:
            lines += [head, ""]
    return lines


def doc_function(name: str, func, module: str) -> list[str]:
    lines = [
        f'<a id="{anchor(module, name)}"></a>',
        f"### `{name}`",
        "",
        "```python",
        f"{name}{signature(func)}",
        "```",
        "",
    ]
    doc = md_doc(func.__doc__)
    if doc:
        lines += [doc, ""]
    return lines


def _repr(value) -> str:
    """``repr`` that is the same in every run: the elements of a set sorted (their order varies
    with string hashing), no memory addresses (``<X object at 0x...>`` -> ``<X object>``)."""
    if isinstance(value, (set, frozenset)) and value:
        inner = ", ".join(sorted(_repr(v) for v in value))
        return f"{{{inner}}}" if type(value) is set else f"{type(value).__name__}({{{inner}}})"
    return re.sub(r" at 0x[0-9a-fA-F]+>", ">", repr(value))


def doc_value(name: str, value, attr_doc: str | None) -> list[str]:
    text = _repr(value)
    if len(text) > 300:
        text = text[:297] + "..."
    lines = [f"### `{name}`", "", f"`{name} = {text}`", ""]
    if attr_doc:
        lines += [md_doc(attr_doc), ""]
    return lines


def doc_module(modname: str) -> list[str]:
    module = importlib.import_module(modname)
    lines = [f'<a id="{anchor(modname)}"></a>', f"## `{modname}`", ""]
    doc = md_doc(module.__doc__)
    if doc:
        lines += [doc, ""]
    if getattr(module, "__file__", None) is None:  # namespace package: no __init__.py
        subs = [m for m in MODULES if m.startswith(modname + ".")]
        lines += (
            [
                "A namespace package (no `__init__.py`, nothing to import from it directly); its "
                "modules:",
                "",
            ]
            + [f"- [`{m}`](#{anchor(m)})" for m in subs]
            + [""]
        )
        return lines
    attr_docs = attribute_docs(module)
    refs, body = [], []
    for name in public_names(module):
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            refs.append(f"- `{name}`: submodule [`{obj.__name__}`](#{anchor(obj.__name__)})")
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            home = home_module(obj) or modname
            if home != modname:
                refs.append(
                    f"- [`{name}`](#{anchor(home, name)}): re-exported from `{obj.__module__}`"
                )
                continue
            body += doc_class(name, obj, modname) if inspect.isclass(obj) else []
            body += doc_function(name, obj, modname) if inspect.isfunction(obj) else []
        else:
            body += doc_value(name, obj, attr_docs.get(name) or _find_attr_doc(name, obj))
    if refs:
        lines += ["Also exported here:", ""] + refs + [""]
    return lines + body


def generate() -> str:
    import mibpcert

    head = [
        "# API reference",
        "",
        f"_Generated from the docstrings of mibpcert {mibpcert.__version__} by "
        "`python docs/gen_api.py`; do not edit by hand._",
        "",
        "Modules:",
        "",
    ]
    head += [f"- [`{m}`](#{anchor(m)})" for m in MODULES]
    body: list[str] = []
    for m in MODULES:
        body += [""] + doc_module(m)
    text = "\n".join(head + body)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate docs/api.md from mibpcert's docstrings.")
    p.add_argument("--out", default=str(ROOT / "docs" / "api.md"), help="output file")
    args = p.parse_args(argv)
    Path(args.out).write_text(generate())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
