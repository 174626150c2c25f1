"""Printable QR cards for an elder's one-tap link."""

from __future__ import annotations

from pathlib import Path

import segno

from hotline.i18n import t


def write_card(path: Path, name: str, url: str, lang: str, card_code: str) -> None:
    """Write a card (SVG, or PNG by extension) with a big QR code, the name and big text."""
    qr = segno.make(url, error="m")
    if path.suffix.lower() == ".png":
        qr.save(str(path), scale=12, border=4)
        return
    path.write_text(card_svg(qr, name, lang, card_code), encoding="utf-8")


def card_svg(qr: segno.QRCode, name: str, lang: str, card_code: str) -> str:
    """An A6-ish SVG card: title, QR code, the elder's name and card code."""
    from html import escape
    from io import BytesIO

    buf = BytesIO()
    qr.save(buf, kind="svg", scale=10, border=2, xmldecl=False, svgns=True)
    inner = buf.getvalue().decode()
    w, h = qr.symbol_size(scale=10, border=2)
    title = escape(t(lang, "card.title"))
    sub = escape(t(lang, "card.subtitle"))
    code = escape(t(lang, "card.code", code=card_code))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="{h + 330}" '
        f'viewBox="0 0 600 {h + 330}">'
        f'<rect width="100%" height="100%" fill="#ffffff"/>'
        f'<text x="300" y="70" font-size="52" font-weight="bold" text-anchor="middle" '
        f'fill="#000">{title}</text>'
        f'<g transform="translate({(600 - w) // 2},110)">{inner}</g>'
        f'<text x="300" y="{h + 175}" font-size="44" text-anchor="middle" fill="#000">'
        f"{escape(name)}</text>"
        f'<text x="300" y="{h + 235}" font-size="28" text-anchor="middle" fill="#000">{sub}</text>'
        f'<text x="300" y="{h + 290}" font-size="26" text-anchor="middle" fill="#000">{code}</text>'
        "</svg>"
    )
