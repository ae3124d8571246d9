"""Naming: the address book (private > local > router), subscriptions, signed feeds, publishing, jump service."""
from .apply import FeedResult, apply_feed
from .book import BOOKS, AddressBook, Entry
from .feed import FeedLine, format_line, parse_line, sign_line, verify_line
from .names import NamingError, normalize_name
from .service import NamingService

__all__ = ["BOOKS", "AddressBook", "Entry", "FeedLine", "FeedResult", "NamingError", "NamingService", "apply_feed",
           "format_line", "normalize_name", "parse_line", "sign_line", "verify_line"]
