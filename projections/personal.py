"""Personal data in the read model: with a cipher key the ledger rows keep the party's name, ID
number and phone only encrypted (one AES-GCM ciphertext a row, with the store's own key).

A row is a list of values in `FIELDS` order (projections.ledger.packed). Sealed, those three
values are None and the row ends with one more value: the base64 of the ciphertext of their
JSON. Sealing a province's 200,000 rows costs about a second of a rebuild; see README."""

import base64
from typing import Any

import orjson

from domain.errors import DomainError
from projections.ledger import FIELDS

PERSONAL = ("party_name", "party_id_no", "party_phone")
_AT = tuple(FIELDS.index(f) for f in PERSONAL)
_SEALED = len(FIELDS) + 1


def seal(values: list[Any], cipher: Any) -> list[Any]:
    if cipher is None:
        return values
    secret = orjson.dumps([values[i] for i in _AT])
    for i in _AT:
        values[i] = None
    values.append(base64.b64encode(cipher.encrypt(secret)).decode())
    return values


def unseal(values: list[Any], cipher: Any) -> list[Any]:
    if len(values) != _SEALED:
        return values
    if cipher is None:
        raise DomainError("读模型中的个人信息已加密：请设置 LANDLEDGER_CIPHER_KEY")
    secret = orjson.loads(cipher.decrypt(base64.b64decode(values.pop())))
    for i, value in zip(_AT, secret, strict=True):
        values[i] = value
    return values
