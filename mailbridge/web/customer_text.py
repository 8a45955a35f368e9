"""The words of the customer's view (web/customer.py, templates view*.html), in the
languages the mail templates ship (templates/de|fr|es|ja): the page is in the ticket's
language, English for any other and for the pages that know no ticket (a link that is
not valid says nothing about whose it was)."""

from __future__ import annotations

__all__ = ["words"]

_EN = {
    "status": "Status",
    "conversation": "Conversation",
    "reply": "Reply",
    "you": "you",
    "empty": "No messages yet.",
    "merged_from": "The request this link was sent for has been merged into this one.",
    "reply_hint": "To reply, answer any mail about this request (keep {tag} in the subject), "
    "or write to us with {tag} in the subject:",
    "personal": "This page is read only. Its link is personal: please do not forward it.",
    "bytes": "bytes",
    "new": "Received — waiting for our team",
    "open": "In progress",
    "pending": "Waiting for your reply",
    "restored": "Service restored — we are confirming the fix",
    "resolved": "Resolved",
    "closed": "Closed",
}
_WORDS = {
    "en": _EN,
    "de": {
        "status": "Status",
        "conversation": "Verlauf",
        "reply": "Antworten",
        "you": "Sie",
        "empty": "Noch keine Nachrichten.",
        "merged_from": "Die Anfrage, zu der dieser Link gehört, wurde mit dieser zusammengeführt.",
        "reply_hint": "Um zu antworten, antworten Sie auf eine beliebige E-Mail zu dieser Anfrage "
        "(lassen Sie {tag} im Betreff stehen) oder schreiben Sie uns mit {tag} im Betreff:",
        "personal": "Diese Seite ist nur zum Lesen. Der Link ist persönlich: Bitte leiten Sie ihn nicht weiter.",
        "bytes": "Bytes",
        "new": "Eingegangen — wartet auf unser Team",
        "open": "In Bearbeitung",
        "pending": "Wartet auf Ihre Antwort",
        "restored": "Dienst wiederhergestellt — wir prüfen die Lösung",
        "resolved": "Gelöst",
        "closed": "Geschlossen",
    },
    "fr": {
        "status": "État",
        "conversation": "Échanges",
        "reply": "Répondre",
        "you": "vous",
        "empty": "Aucun message pour l'instant.",
        "merged_from": "La demande pour laquelle ce lien a été envoyé a été fusionnée avec celle-ci.",
        "reply_hint": "Pour répondre, répondez à n'importe quel e-mail concernant cette demande "
        "(gardez {tag} dans l'objet), ou écrivez-nous avec {tag} dans l'objet :",
        "personal": "Cette page est en lecture seule. Son lien est personnel : merci de ne pas le transférer.",
        "bytes": "octets",
        "new": "Reçue — en attente de notre équipe",
        "open": "En cours de traitement",
        "pending": "En attente de votre réponse",
        "restored": "Service rétabli — nous vérifions la solution",
        "resolved": "Résolue",
        "closed": "Fermée",
    },
    "es": {
        "status": "Estado",
        "conversation": "Conversación",
        "reply": "Responder",
        "you": "usted",
        "empty": "Todavía no hay mensajes.",
        "merged_from": "La solicitud para la que se envió este enlace se ha unido a esta.",
        "reply_hint": "Para responder, conteste a cualquier correo sobre esta solicitud "
        "(mantenga {tag} en el asunto) o escríbanos con {tag} en el asunto:",
        "personal": "Esta página es de solo lectura. Su enlace es personal: no lo reenvíe.",
        "bytes": "bytes",
        "new": "Recibida — pendiente de nuestro equipo",
        "open": "En curso",
        "pending": "Esperando su respuesta",
        "restored": "Servicio restablecido — estamos comprobando la solución",
        "resolved": "Resuelta",
        "closed": "Cerrada",
    },
    "ja": {
        "status": "状況",
        "conversation": "やり取り",
        "reply": "返信",
        "you": "お客様",
        "empty": "まだメッセージはありません。",
        "merged_from": "このリンクのお問い合わせは、こちらのお問い合わせに統合されました。",
        "reply_hint": "返信するには、このお問い合わせに関するメールのいずれかにご返信ください"
        "（件名の {tag} は残してください）。または件名に {tag} を入れて次の宛先までお送りください：",
        "personal": "このページは閲覧専用です。リンクはお客様専用ですので、転送しないでください。",
        "bytes": "バイト",
        "new": "受付済み — 担当者の対応待ち",
        "open": "対応中",
        "pending": "お客様からのご返信待ち",
        "restored": "サービス復旧 — 解決を確認中",
        "resolved": "解決済み",
        "closed": "完了",
    },
}


def words(language: str | None) -> tuple[str, dict[str, str]]:
    """(the page's language, its words): the ticket's language if shipped, else English."""
    code = language if language in _WORDS else "en"
    assert code is not None
    return code, _WORDS[code]
