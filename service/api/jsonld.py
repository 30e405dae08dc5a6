"""The timeline as schema.org `LiveBlogPosting` for search engines (SPEC §3)."""

from __future__ import annotations

import html
from typing import Any

import nh3

from service.domain.blocks import Block
from service.domain.state import CoverageState, PostState

MEDIA_TYPE = "application/ld+json"


def plain(text: str) -> str:
    return html.unescape(nh3.clean(text, tags=set()))


def body_text(body: list[Block]) -> str:
    parts: list[str] = []
    for block in body:
        for name in ("text", "caption", "fallback_text"):
            value = getattr(block, name, None)
            if value:
                parts.append(plain(value))
        parts.extend(plain(item) for item in getattr(block, "items", ()))
    return "\n\n".join(parts)


def live_blog_posting(coverage: CoverageState, posts: list[PostState], base_url: str) -> dict[str, Any]:
    page_url = f"{base_url}/v1/coverages/{coverage.id}/timeline"
    document: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "@id": page_url,
        "url": page_url,
        "headline": plain(coverage.title),
        "coverageStartTime": coverage.started_at,
        "dateModified": coverage.updated_at,
        "liveBlogUpdate": [
            {
                "@type": "BlogPosting",
                "@id": f"{base_url}/v1/coverages/{coverage.id}/posts/{post.id}",
                "headline": plain(post.title) if post.title else body_text(post.body)[:110],
                "articleBody": body_text(post.body),
                "datePublished": post.published_at,
                "dateModified": post.updated_at,
                **(
                    {"author": [{"@type": "Person", "name": plain(c.name)} for c in post.contributors]}
                    if post.contributors
                    else {}
                ),
            }
            for post in posts
        ],
    }
    if coverage.summary:
        document["description"] = plain(coverage.summary)
    if coverage.ended_at is not None:
        document["coverageEndTime"] = coverage.ended_at
    if coverage.editors:
        document["editor"] = [{"@type": "Person", "name": plain(name)} for name in coverage.editors]
    return document
