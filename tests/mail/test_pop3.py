"""The POP3 core without sockets: RFC 1939 states, multi-line byte-stuffing, deletion only at QUIT, garbage."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from apps.mail.pop3 import MAX_ERRORS, Pop3Session


class Drop:
    def __init__(self, messages: dict[str, bytes]):
        self.data = dict(messages)
        self.deleted: list[str] = []
        self.released = False

    def messages(self):
        return [(key, len(value)) for key, value in self.data.items()]

    def read(self, unique_id):
        return self.data[unique_id]

    def delete(self, unique_ids):
        self.deleted.extend(unique_ids)
        for key in unique_ids:
            del self.data[key]

    def release(self):
        self.released = True


MESSAGES = {"a1": b"Subject: one\r\n\r\nline 1\r\n.starts with a dot\r\nline 3\r\n",
            "b2": b"Subject: two\r\nX: y\r\n\r\nbody\r\n"}


def logged_in(drop=None):
    drop = drop or Drop(MESSAGES)
    session = Pop3Session(lambda user, password: drop if (user, password) == ("bob", "pw") else None, "x.b32.i2p")
    assert session.greeting().startswith(b"+OK")
    assert session.receive_line(b"USER bob\r\n").startswith(b"+OK")
    assert session.receive_line(b"PASS pw\r\n") == b"+OK bob has 2 messages\r\n"
    return session, drop


def test_stat_list_uidl():
    session, _ = logged_in()
    sizes = [len(m) for m in MESSAGES.values()]
    assert session.receive_line(b"STAT") == b"+OK 2 %d\r\n" % sum(sizes)
    assert session.receive_line(b"LIST\r\n") == b"+OK 2 messages\r\n1 %d\r\n2 %d\r\n.\r\n" % tuple(sizes)
    assert session.receive_line(b"LIST 2\r\n") == b"+OK 2 %d\r\n" % sizes[1]
    assert session.receive_line(b"UIDL\r\n") == b"+OK\r\n1 a1\r\n2 b2\r\n.\r\n"
    assert session.receive_line(b"uidl 1\r\n") == b"+OK 1 a1\r\n"
    assert session.receive_line(b"LIST 3\r\n").startswith(b"-ERR")


def test_retr_byte_stuffs_and_top_gives_header_plus_lines():
    session, _ = logged_in()
    retr = session.receive_line(b"RETR 1\r\n")
    assert retr == (b"+OK %d octets\r\nSubject: one\r\n\r\nline 1\r\n..starts with a dot\r\nline 3\r\n.\r\n"
                    % len(MESSAGES["a1"]))
    assert session.receive_line(b"TOP 1 1\r\n") == b"+OK\r\nSubject: one\r\n\r\nline 1\r\n.\r\n"
    assert session.receive_line(b"TOP 2 0\r\n") == b"+OK\r\nSubject: two\r\nX: y\r\n\r\n.\r\n"
    assert session.receive_line(b"TOP 2\r\n").startswith(b"-ERR")


def test_dele_counts_until_quit_and_rset_undoes():
    session, drop = logged_in()
    assert session.receive_line(b"DELE 1\r\n").startswith(b"+OK")
    assert session.receive_line(b"DELE 1\r\n").startswith(b"-ERR")       # already deleted
    assert session.receive_line(b"RETR 1\r\n").startswith(b"-ERR")
    assert session.receive_line(b"STAT\r\n") == b"+OK 1 %d\r\n" % len(MESSAGES["b2"])
    assert session.receive_line(b"RSET\r\n").startswith(b"+OK")
    assert session.receive_line(b"STAT\r\n").startswith(b"+OK 2 ")
    assert session.receive_line(b"DELE 2\r\n").startswith(b"+OK")
    assert drop.deleted == []
    assert session.receive_line(b"QUIT\r\n").startswith(b"+OK")
    assert drop.deleted == ["b2"] and drop.released and session.closed


def test_a_dropped_connection_deletes_nothing():
    session, drop = logged_in()
    session.receive_line(b"DELE 1\r\n")
    session.connection_lost()
    assert drop.deleted == [] and drop.released


def test_authorization_state_refuses_transactions_and_wrong_passwords():
    drop = Drop(MESSAGES)
    session = Pop3Session(lambda user, password: drop if password == "pw" else None)
    assert session.receive_line(b"STAT\r\n").startswith(b"-ERR")
    assert session.receive_line(b"PASS pw\r\n").startswith(b"-ERR")          # USER first
    assert session.receive_line(b"CAPA\r\n").startswith(b"+OK capability list follows\r\n")
    assert b"UIDL\r\n" in session.receive_line(b"CAPA\r\n")
    for attempt in range(3):
        session.receive_line(b"USER bob\r\n")
        reply = session.receive_line(b"PASS nope\r\n")
        assert reply.startswith(b"-ERR [AUTH]")
    assert session.closed and not drop.released


def test_in_use_mailbox_is_refused_with_its_code():
    session = Pop3Session(lambda user, password: "locked")
    session.receive_line(b"USER bob\r\n")
    assert session.receive_line(b"PASS pw\r\n").startswith(b"-ERR [IN-USE]")


def test_garbage_gets_errors_and_then_a_hang_up():
    session, drop = logged_in()
    for line in (b"\xff\xfe\r\n", b"\r\n", b"RETR x\r\n", b"LIST 99999999999\r\n", b"X" * 400 + b"\r\n"):
        assert session.receive_line(line).startswith(b"-ERR")
    for _ in range(MAX_ERRORS):
        reply = session.receive_line(b"FOO\r\n")
        if session.closed:
            break
    assert session.closed and b"goodbye" in reply and drop.released and drop.deleted == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_any_lines_give_pop3_answers_only(lines):
    session, drop = logged_in()
    for line in lines:
        reply = session.receive_line(line)
        assert session.closed or reply.startswith((b"+OK", b"-ERR"))
    session.connection_lost()
    assert drop.released
