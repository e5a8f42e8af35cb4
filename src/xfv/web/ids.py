"""Ids and indexes in URLs, checked once at the API boundary.

A database id is a 64-bit signed integer: a larger number in a path or a query would reach the
database driver and fail there (SQLite raises OverflowError), so every id and row index the pages
and the API accept is one of these types, answered 422 when out of range.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

#: The largest id a store can hold (SQLite INTEGER and PostgreSQL BIGINT).
MAX_ID = 2**63 - 1

PairId = Annotated[int, Path(ge=1, le=MAX_ID, description="a pair's id")]
ImageId = Annotated[int, Path(ge=1, le=MAX_ID, description="an image's id")]
MethodNumber = Annotated[int, Path(ge=1, le=MAX_ID, description="an X-Map method's number (see /api/methods)")]
RowIndex = Annotated[int | None, Query(ge=0, le=MAX_ID, description="the row's index in that order, if known")]
#: A pair id in a JSON body.
PairIdField = Annotated[int, Field(ge=1, le=MAX_ID, description="a pair's id")]
