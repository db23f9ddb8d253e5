"""A griffe extension for the documentation site: Sphinx roles in docstrings (``:func:`x```) as Markdown code.

genbench's docstrings cite other objects the Sphinx way (``:func:`models.load_checkpoint```,
``:class:`~models.fields.Range```); mkdocstrings renders Markdown, where those would show as raw text. This
extension (``mkdocs.yml``: ``extensions: [scripts/griffe_sphinx_roles.py]``) rewrites them as inline code
(`` `models.load_checkpoint` ``, the ``~`` form as the last name), never as links, so an object the site does
not document cannot break ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):`(~?)([^`]+)`")


def markdown_roles(text: str) -> str:
    """``text`` with every Sphinx role replaced by inline code (``~a.b.c`` -> ``c``)."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every loaded object's docstring."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if getattr(obj, "docstring", None) is not None:
            obj.docstring.value = markdown_roles(obj.docstring.value)
