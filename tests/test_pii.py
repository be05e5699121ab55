"""The pii step on text written for occi: planted items are replaced, ordinary numbers are not."""
from __future__ import annotations

import random

import pytest

from occi.corpora import pii
from occi.corpora.document import Document
from occi.corpora.pii import PLACEHOLDERS, PiiFormatter

# (language, text with planted items, {kind: how many planted}, the real values that must disappear)
PLANTED = [
    ("de", "Bitte schreiben Sie an anna.berger@stadtwerke-beispiel.de oder rufen Sie 030 12345678 an. "
           "Das Handy erreicht man unter 0170 1234567, aus dem Ausland unter +49 (0)30 1234-5678. "
           "Die Überweisung geht auf DE89 3704 0044 0532 0130 00, der Server hat die Adresse 192.168.10.25.",
     {"email": 1, "phone": 3, "iban": 1, "ip": 1},
     ["anna.berger@", "12345678", "1234567", "1234-5678", "DE89", "192.168.10.25"]),
    ("fr", "Écrivez à jean.dupont@mairie-exemple.fr ou appelez le 01 23 45 67 89, portable 06.12.34.56.78. "
           "Virement sur FR14 2004 1010 0505 0001 3M02 606. Connexion depuis 2001:db8:85a3::8a2e:370:7334.",
     {"email": 1, "phone": 2, "iban": 1, "ip": 1},
     ["jean.dupont@", "01 23 45 67 89", "06.12.34.56.78", "FR14", "85a3"]),
    ("es", "Para reservas llame al teléfono 912 345 678 o escriba a reservas@hotel-ejemplo.es; "
           "desde fuera de España, +34 612 34 56 78. Cuenta ES91 2100 0418 4502 0005 1332.",
     {"email": 1, "phone": 2, "iban": 1},
     ["912 345 678", "reservas@", "612 34 56 78", "ES91"]),
    ("pl", "Kontakt: biuro@firma-przyklad.pl, tel. 601 234 567. Adres IP serwera: 10.20.30.40.",
     {"email": 1, "phone": 1, "ip": 1}, ["biuro@", "601 234 567", "10.20.30.40"]),
    ("sv", "Ring oss på 08-123 456 78 eller mejla info@exempel.se.",
     {"phone": 1, "email": 1}, ["08-123 456 78", "info@"]),
]

# Ordinary numbers, one sentence each, written for occi: none of them is personal data.
ORDINARY = {
    "de": ["Im Jahr 2023 kamen 1.234.567 Besucher in die Stadt.", "Der Preis beträgt 12,50 Euro.",
           "Siehe Abschnitt 3.1.2.4 der Verordnung.", "Am 01.02.2024 um 10.30 Uhr beginnt die Sitzung.",
           "Die Postleitzahl lautet 10115.", "Das Spiel endete 3:1.", "Version 2.10.3 ist erschienen.",
           "Die Strecke ist 1 234 km lang.", "Der Umsatz stieg um 4,5 Prozent auf 120 Millionen.",
           "Die ISBN ist 978-3-16-148410-0.", "Die Koordinaten sind 52.5200, 13.4050.",
           "Von 1914 bis 1918 und von 1939 bis 1945.", "Uhrzeit 12:30:45.", "Aktenzeichen 2 BvR 123/20."],
    "fr": ["La ville compte 2 165 423 habitants.", "Le prix est de 1 250,00 euros.", "Le 14/07/1789.",
           "Article L. 121-1 du code.", "Entre 1 000 et 2 000 personnes.", "Score final : 102-98."],
    "es": ["La ciudad tiene 3 223 334 habitantes.", "El precio es de 1.250,50 euros.",
           "En 2019 se vendieron 912 345 678 unidades.", "El 12-10-1492 llegó a América."],
    "pl": ["Miasto ma 1 861 975 mieszkańców.", "Budżet wyniósł 601 234 567 złotych."],
    "sv": ["Stockholm har 975 551 invånare.", "Priset är 1 299 kronor."],
}


@pytest.mark.parametrize("language,text,planted,secrets", PLANTED, ids=[row[0] for row in PLANTED])
def test_planted_items_are_replaced_and_counted(language, text, planted, secrets):
    doc = Document(text=text, id="x", source="s", language=language)
    assert PiiFormatter().filter(doc) is None  # pii never drops a document
    assert doc.metadata["pii"] == planted
    for secret in secrets:
        assert secret not in doc.text
    assert any(placeholder in doc.text for placeholder in PLACEHOLDERS.values())


def test_ordinary_numbers_are_left_alone():
    """The false positives measured on ordinary numbers: none in these 28 sentences."""
    formatter = PiiFormatter()
    changed = [(language, sentence) for language, sentences in ORDINARY.items() for sentence in sentences
               if formatter.replace(sentence, language)[1]]
    assert sum(len(s) for s in ORDINARY.values()) == 28
    assert changed == []


def test_only_the_configured_kinds_are_replaced():
    text = "Mail an a.b@beispiel.de, Telefon 030 12345678."
    out, counts = PiiFormatter(["email"]).replace(text, "de")
    assert counts == {"email": 1} and "030 12345678" in out


def test_an_iban_with_wrong_check_digits_is_an_ordinary_number():
    assert PiiFormatter().replace("Referenz DE00 3704 0044 0532 0130 00.", "de")[1].get("iban") is None


def test_the_cued_scan_finds_exactly_what_the_patterns_find():
    """pii.finditer tries each pattern only near a match of its cue: on random strings of the
    characters the patterns care about it must give every match of `pattern.finditer`, no other."""
    rng = random.Random(31)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
             for alphabet in ("0123456789" * 3 + "  ..--/()+:@xAZDE", "1290" * 3 + "5...x ")  # the second: IPv4s
             for _ in range(10_000)]
    texts += [text for _, text, _, _ in PLANTED] + [s for sentences in ORDINARY.values() for s in sentences]
    for pattern in pii._CUES:
        for text in texts:
            assert [m.span() for m in pii.finditer(pattern, text)] == [m.span() for m in pattern.finditer(text)], \
                (pattern.pattern, text)


def test_only_text_with_a_digit_or_an_at_sign_is_searched():
    assert not pii._has_digit("keine Ziffer, nur Wörter") and pii._has_digit("Seite 12") and pii._has_digit("m²")
    assert PiiFormatter().replace("dead::beef:cafe ohne Ziffer", "de") == ("dead::beef:cafe ohne Ziffer", {})
    assert PiiFormatter().replace("dead::beef:cafe m²", "de")[1] == {"ip": 1}
