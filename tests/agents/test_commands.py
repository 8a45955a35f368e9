"""Agent commands at the top of a reply (agents/commands.py): forms, errors, block boundaries,
mail-client shapes, and input that must never make the parser raise."""

from __future__ import annotations

import random
import time

import pytest

from mailbridge.agents.commands import (
    HELP,
    PRIORITIES,
    SEVERITIES,
    STATUSES,
    Command,
    CommandError,
    ParsedCommands,
    parse_argument,
    parse_commands,
)

NBSP = "\u00a0"


def one(text: str) -> Command:
    parsed = parse_commands(text)
    assert parsed.ok, parsed.errors
    assert len(parsed.commands) == 1, parsed.commands
    return parsed.commands[0]


def only_error(text: str) -> CommandError:
    parsed = parse_commands(text)
    assert not parsed.ok
    assert len(parsed.errors) == 1, parsed.errors
    return parsed.errors[0]


# --- each command with valid arguments -------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "args"),
    [
        ("#assign bob", "assign", ("bob",)),
        ("#assign Alice.Smith_2-x", "assign", ("alice.smith_2-x",)),
        ("#take", "take", ()),
        ("#priority high", "priority", ("high",)),
        ("#priority CRITICAL", "priority", ("critical",)),
        ("#severity business-halted", "severity", ("business-halted",)),
        ("#severity business halted", "severity", ("business-halted",)),
        ("#severity Business_Interrupted", "severity", ("business-interrupted",)),
        ("#severity user - affected", "severity", ("user-affected",)),
        ("#category network", "category", ("network",)),
        ("#category  Network   &  VPN, remote ", "category", ("Network & VPN, remote",)),
        ("#tag vpn", "tag", ("vpn",)),
        ("#tag VPN wifi.5g under_score a-b 42", "tag", ("vpn", "wifi.5g", "under_score", "a-b", "42")),
        ("#note", "note", ()),
        ("#merge MB-2026-000041", "merge", ("MB-2026-000041",)),
        ("#merge mb-2026-000041", "merge", ("MB-2026-000041",)),
        ("#merge [MB-2026-000041]", "merge", ("MB-2026-000041",)),
        ("#kb", "kb", ()),
        ("#kb  How to   reset the VPN token ", "kb", ("How to reset the VPN token",)),
        ("#ack", "ack", ()),
        ("#reply", "reply", ()),
        ("#public", "public", ()),
        ("#cc add Dave@Customer.example", "cc", ("add", "dave@customer.example")),
        ("#cc remove <dave@customer.example>", "cc", ("remove", "dave@customer.example")),
        ("#cc ADD dave@customer.example<mailto:dave@customer.example>", "cc", ("add", "dave@customer.example")),
        ("#fwd", "fwd", ()),
    ],
)
def test_valid_command(line: str, name: str, args: tuple[str, ...]) -> None:
    command = one(line + "\nThanks.")
    assert command == Command(name, args, 1, line.strip())


@pytest.mark.parametrize("status", STATUSES)
def test_every_status(status: str) -> None:
    assert one(f"#status {status.upper()}").args == (status,)


@pytest.mark.parametrize("priority", PRIORITIES)
def test_every_priority(priority: str) -> None:
    assert one(f"#priority {priority}").args == (priority,)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_severity(severity: str) -> None:
    assert one(f"#severity {severity}").args == (severity,)
    assert one(f"#severity {severity.replace('-', ' ')}").args == (severity,)
    assert one(f"#severity {severity.replace('-', '_').upper()}").args == (severity,)


def test_all_commands_together() -> None:
    text = (
        "#assign bob\n#status pending\n#priority high\n#severity business-halted\n#category network\n"
        "#tag vpn\n#note\n#merge MB-2026-000041\n#kb\n#ack\n#fwd\n\nInternal: checked the logs."
    )
    parsed = parse_commands(text)
    assert parsed.ok
    assert [c.name for c in parsed.commands] == [
        "assign",
        "status",
        "priority",
        "severity",
        "category",
        "tag",
        "note",
        "merge",
        "kb",
        "ack",
        "fwd",
    ]
    assert [c.line for c in parsed.commands] == list(range(1, 12))
    assert parsed.body == "Internal: checked the logs."


def test_note_and_kb_together_are_allowed() -> None:
    parsed = parse_commands("#note\n#kb VPN reset\n\nSteps: ...")
    assert parsed.ok
    assert [(c.name, c.args) for c in parsed.commands] == [("note", ()), ("kb", ("VPN reset",))]


# --- case, colon and whitespace forms ---------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "#status resolved",
        "#STATUS RESOLVED",
        "#Status Resolved",
        "#status: resolved",
        "#status:resolved",
        "#status : resolved",
        "#Status:\tResolved",
        f"#status{NBSP}resolved",
        f"#status:{NBSP}{NBSP}resolved{NBSP}",
        f"{NBSP} #status resolved",
        "   #status resolved   ",
    ],
)
def test_status_forms(line: str) -> None:
    command = one(line)
    assert (command.name, command.args) == ("status", ("resolved",))
    assert command.text == line.strip()


def test_colon_on_a_command_without_arguments() -> None:
    assert one("#TAKE:").name == "take"


def test_tags_split_on_commas_and_spaces() -> None:
    assert one("#tag vpn,wifi, Printer ,,  x").args == ("vpn", "wifi", "printer", "x")
    assert one(f"#tag:{NBSP}vpn,{NBSP}wifi").args == ("vpn", "wifi")


def test_duplicate_tags_in_one_command_are_given_once() -> None:
    assert one("#tag vpn VPN vpn wifi").args == ("vpn", "wifi")


def test_tags_accumulate_over_repeated_commands() -> None:
    parsed = parse_commands("#tag vpn\n#status pending\n#tag wifi, printer\n#tag vpn")
    assert parsed.ok
    tags = [tag for c in parsed.commands if c.name == "tag" for tag in c.args]
    assert tags == ["vpn", "wifi", "printer", "vpn"]
    assert [c.line for c in parsed.commands if c.name == "tag"] == [1, 3, 4]


def test_tag_of_fifty_characters_is_fine() -> None:
    assert one("#tag " + "a" * 50).args == ("a" * 50,)


def test_category_of_sixty_four_characters_is_fine() -> None:
    assert one("#category " + "c" * 64).args == ("c" * 64,)  # tickets.category holds 64


def test_kb_title_of_two_hundred_characters_is_fine() -> None:
    assert one("#kb " + "t" * 200).args == ("t" * 200,)


# --- errors: each kind, with the message checked ---------------------------------------


def test_status_error_message_matches_the_documented_form() -> None:
    error = only_error("#status done\nbody")
    assert error == CommandError(
        1,
        "#status done",
        "#status: 'done' is not a status; write #status open|pending|restored|resolved|closed, "
        "or #status pending until=YYYY-MM-DD",
    )


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("#assign", ["#assign:", "agent id missing", "write #assign AGENT_ID"]),
        ("#assign bob alice", ["give exactly one agent id", "'bob alice'", "write #assign AGENT_ID"]),
        ("#assign bob@example.com", ["'bob@example.com' is not an agent id", "write #assign AGENT_ID"]),
        ("#take bob", ["#take:", "takes nothing after it", "'bob'", "write #take"]),
        ("#status", ["#status:", "status missing", "open|pending|restored|resolved|closed"]),
        ("#status pending resolved", ["give exactly one status"]),
        ("#priority urgent", ["'urgent' is not a priority", "write #priority critical|high|medium|low"]),
        ("#priority", ["priority missing", "write #priority critical|high|medium|low"]),
        (
            "#severity catastrophic",
            ["'catastrophic' is not a severity", "write #severity business-halted|business-interrupted|user-affected"],
        ),
        ("#severity", ["severity missing", "#severity business-halted|"]),
        ("#severity business halted now", ["'business halted now' is not a severity"]),
        ("#category", ["#category:", "category missing", "write #category TEXT"]),
        ("#category " + "c" * 65, ["longer than 64 characters", "write #category TEXT"]),
        ("#tag", ["#tag:", "tag missing", "write #tag TAG [TAG ...]"]),
        ("#tag vpn #wifi", ["'#wifi' is not a tag", "write #tag TAG [TAG ...]"]),
        ("#tag caf\u00e9", ["'caf\u00e9' is not a tag"]),
        ("#tag " + "a" * 51, ["longer than 50 characters"]),
        ("#note please read", ["#note:", "takes nothing after it", "write #note"]),
        ("#merge", ["ticket reference missing", "write #merge TICKET_REF"]),
        ("#merge MB-2026-000041 MB-2026-000042", ["give exactly one ticket reference"]),
        ("#merge MB/2026/41", ["'MB/2026/41' is not a ticket reference", "write #merge TICKET_REF"]),
        ("#kb " + "t" * 201, ["#kb:", "longer than 200 characters", "write #kb [TITLE]"]),
        ("#ack now", ["#ack:", "takes nothing after it", "write #ack"]),
        ("#fwd to bob", ["#fwd:", "takes nothing after it", "write #fwd"]),
    ],
)
def test_malformed_command(line: str, fragments: list[str]) -> None:
    error = only_error(line + "\nbody")
    assert error.line == 1
    assert error.text == line[:200]
    for fragment in fragments:
        assert fragment in error.message, (fragment, error.message)


def test_malformed_command_is_not_executed_but_the_others_are() -> None:
    parsed = parse_commands("#take\n#status done\n#priority high\nbody")
    assert [c.name for c in parsed.commands] == ["take", "priority"]
    assert [e.line for e in parsed.errors] == [2]
    assert not parsed.ok


def test_unknown_command_suggests_the_closest() -> None:
    error = only_error("#stauts resolved")
    assert error.message.startswith("unknown command #stauts; did you mean #status?")
    assert "The commands are: #assign, #take, #unassign, #status," in error.message
    assert "#fwd" in error.message


def test_unknown_command_without_a_close_match() -> None:
    error = only_error("#xyzzy")
    assert error.message.startswith("unknown command #xyzzy.")
    assert "did you mean" not in error.message
    assert "The commands are:" in error.message


@pytest.mark.parametrize(
    ("line", "suggestion"),
    [
        ("#asign bob", "#assign"),
        ("#tags vpn", "#tag"),
        ("#Prio high", "#priority"),
        ("#assignee bob", "#assign"),
        ("#tag#vpn", "#tag"),
        ("#close", "#status closed"),
        ("#Resolve", "#status resolved"),
        ("#high", "#priority high"),
    ],
)
def test_unknown_command_suggestions(line: str, suggestion: str) -> None:
    error = only_error(line)
    assert error.message.startswith(f"unknown command #{line.split()[0][1:].lower()}; did you mean {suggestion}?")


def test_name_glued_to_a_value_is_unknown() -> None:
    error = only_error("#status=resolved")
    assert error.message.startswith("unknown command #status=resolved; did you mean #status?")


def test_non_ascii_hashtag_is_an_unknown_command_not_body() -> None:
    parsed = parse_commands("#срочно\nтекст")
    assert parsed.errors[0].message.startswith("unknown command #срочно")
    assert parsed.body == "текст"


@pytest.mark.parametrize("name", ["status", "priority", "severity", "category", "merge", "kb", "note", "ack", "fwd"])
def test_single_valued_command_given_twice(name: str) -> None:
    args = {
        "status": " pending",
        "priority": " high",
        "severity": " user-affected",
        "category": " network",
        "merge": " MB-2026-000041",
    }.get(name, "")
    parsed = parse_commands(f"#{name}{args}\n#tag x\n#{name}{args}\nbody")
    assert [c.name for c in parsed.commands] == [name, "tag"]
    assert parsed.errors == (CommandError(3, f"#{name}{args}", f"#{name} given twice (line 1 and 3); give it once"),)


def test_status_twice_with_different_values_keeps_the_first_and_reports_the_second() -> None:
    parsed = parse_commands("#status pending\n\n#status: resolved")
    assert [(c.name, c.args) for c in parsed.commands] == [("status", ("pending",))]
    assert parsed.errors[0].message == "#status given twice (line 1 and 3); give it once"


def test_repetition_counts_even_after_a_malformed_first() -> None:
    parsed = parse_commands("#status done\n#status resolved")
    assert parsed.commands == ()
    assert [e.line for e in parsed.errors] == [1, 2]
    assert "is not a status" in parsed.errors[0].message
    assert parsed.errors[1].message == "#status given twice (line 1 and 2); give it once"


def test_assign_twice() -> None:
    parsed = parse_commands("#assign bob\n#assign alice")
    assert [c.args for c in parsed.commands] == [("bob",)]
    assert parsed.errors[0].message == "#assign given twice (line 1 and 2); give it once"


def test_take_twice() -> None:
    assert only_error("#take\n#take").message == "#take given twice (line 1 and 2); give it once"


@pytest.mark.parametrize(("first", "second"), [("#assign bob", "#take"), ("#take", "#assign bob")])
def test_assign_and_take_together_is_an_error(first: str, second: str) -> None:
    parsed = parse_commands(f"{first}\n#status pending\n{second}\nbody")
    assert not parsed.ok
    (error,) = parsed.errors
    assert error.line == 3
    assert error.text == second
    first_name, second_name = first.split()[0], second.split()[0]
    assert error.message == (
        f"{first_name} (line 1) and {second_name} (line 3) both set the assignee; "
        "give one of them: #assign AGENT_ID, #take or #unassign"
    )
    assert "assign" not in [c.name for c in parsed.commands if c.line == 3]


def test_error_text_is_cut_to_200_characters() -> None:
    line = "#category " + "x" * 500
    error = only_error(line)
    assert error.text == line[:200]
    assert len(error.message) < 300  # the value is not repeated in full


def test_long_unknown_name_is_cut_in_the_message() -> None:
    error = only_error("#" + "q" * 1000)
    assert len(error.message) < 400
    assert "..." in error.message


def test_control_characters_make_the_line_an_error() -> None:
    parsed = parse_commands("#category net\x00work\n#tag a\x07b\nbody")
    assert parsed.commands == ()
    assert [e.line for e in parsed.errors] == [1, 2]
    assert all("control characters" in e.message for e in parsed.errors)
    assert parsed.errors[0].text == "#category net\ufffdwork"
    assert parsed.body == "body"


def test_lone_surrogate_is_an_error_not_a_crash() -> None:
    error = only_error("#category caf\udce9")
    assert "control characters" in error.message
    assert "\udce9" not in error.text
    error.text.encode("utf-8")


# --- block boundaries and body ----------------------------------------------------------


def test_blank_lines_inside_the_block() -> None:
    parsed = parse_commands("#assign bob\n\n#status pending\n   \n#tag vpn\n\nHello,\nplease retry.")
    assert [c.line for c in parsed.commands] == [1, 3, 5]
    assert parsed.body == "Hello,\nplease retry."


def test_leading_blank_lines_before_the_block() -> None:
    parsed = parse_commands("\n\n  \n#take\nbody")
    assert parsed.commands[0].line == 4
    assert parsed.body == "body"


@pytest.mark.parametrize(
    "first_body_line",
    ["#1 is the problem", "# heading", "#", "#  status resolved", "#-1", "#_take", "> #take", "##take", "hello"],
)
def test_line_without_a_letter_after_hash_ends_the_block(first_body_line: str) -> None:
    parsed = parse_commands(f"#take\n{first_body_line}\n#status resolved\nmore")
    assert parsed.ok
    assert [c.name for c in parsed.commands] == ["take"]
    assert parsed.body == f"{first_body_line}\n#status resolved\nmore"


def test_text_starting_with_a_non_command_has_no_block() -> None:
    parsed = parse_commands("#1 is the problem\n#status resolved")
    assert parsed == ParsedCommands((), (), "#1 is the problem\n#status resolved")


def test_commands_after_the_body_starts_are_body() -> None:
    parsed = parse_commands("Hi,\n\n#status resolved\n#take\n")
    assert parsed.commands == ()
    assert parsed.ok
    assert parsed.body == "Hi,\n\n#status resolved\n#take"


def test_body_keeps_its_inner_layout_and_first_line_indentation() -> None:
    text = "#take\n\n\n    indented code\n\n  second   \n\tthird\n\n\n   \n"
    assert parse_commands(text).body == "    indented code\n\n  second   \n\tthird"


def test_no_commands_body_is_the_text_trimmed() -> None:
    assert parse_commands("\n\n  Hello  \nworld \n\n").body == "  Hello  \nworld"


def test_only_commands_and_no_body() -> None:
    parsed = parse_commands("#take\n#status resolved\n\n")
    assert parsed.ok
    assert parsed.body == ""
    assert len(parsed.commands) == 2


@pytest.mark.parametrize("text", ["", "\n", "   \n\t\n", "\ufeff", "\r\n\r\n"])
def test_empty_text(text: str) -> None:
    assert parse_commands(text) == ParsedCommands((), (), "")


def test_crlf_and_cr_line_endings() -> None:
    for sep in ("\r\n", "\r"):
        parsed = parse_commands(sep.join(["", "#assign bob", "", "#status pending", "Hello,", "see below.", ""]))
        assert parsed.ok
        assert [(c.name, c.line) for c in parsed.commands] == [("assign", 2), ("status", 4)]
        assert parsed.commands[0].text == "#assign bob"
        assert parsed.body == "Hello,\nsee below."


def test_bom_and_zero_width_characters_at_line_starts() -> None:
    text = "\ufeff#take\n\u200b#status resolved\n\u200e\u200f #tag vpn\n\u2060\nbody"
    parsed = parse_commands(text)
    assert parsed.ok
    assert [(c.name, c.line, c.text) for c in parsed.commands] == [
        ("take", 1, "#take"),
        ("status", 2, "#status resolved"),
        ("tag", 3, "#tag vpn"),
    ]
    assert parsed.body == "body"


def test_zero_width_characters_inside_a_command_are_ignored() -> None:
    assert one("#sta\u200btus reso\u200dlved").args == ("resolved",)


# --- shapes real mail clients produce ---------------------------------------------------


def test_outlook_html_reply_converted_to_text() -> None:
    # Outlook: an empty paragraph first, NBSPs between words and for "empty" lines.
    text = (
        f"{NBSP}\n\n#status{NBSP}resolved\n{NBSP}\n#priority:{NBSP}Low\n{NBSP}\n"
        f"Hello{NBSP}Anna,\n{NBSP}\nthe VPN gateway was restarted.\n{NBSP}\n"
    )
    parsed = parse_commands(text)
    assert parsed.ok
    assert [(c.name, c.args, c.line) for c in parsed.commands] == [
        ("status", ("resolved",), 3),
        ("priority", ("low",), 5),
    ]
    assert parsed.body == f"Hello{NBSP}Anna,\n{NBSP}\nthe VPN gateway was restarted."


def test_gmail_command_then_two_blank_lines() -> None:
    parsed = parse_commands("#assign bob\n\n\n")
    assert parsed == ParsedCommands((Command("assign", ("bob",), 1, "#assign bob"),), (), "")


def test_gmail_with_body_after_blank_lines() -> None:
    parsed = parse_commands("#assign bob\r\n\r\n\r\nBob, can you take this one?\r\n")
    assert parsed.commands == (Command("assign", ("bob",), 1, "#assign bob"),)
    assert parsed.body == "Bob, can you take this one?"


def test_thunderbird_plain_lines() -> None:
    text = "#take\n#status pending\n#tag printer, floor-3\n\nWaiting for the part.\n\n-- \nAlice\n"
    parsed = parse_commands(text)
    assert parsed.ok
    assert [c.args for c in parsed.commands] == [(), ("pending",), ("printer", "floor-3")]
    assert parsed.body == "Waiting for the part.\n\n-- \nAlice"


def test_forward_on_behalf_of_a_customer() -> None:
    text = (
        "#fwd\n#priority high\n\n---------- Forwarded message ---------\nFrom: Carol <carol@example.com>\n"
        "Subject: printer\n\nThe printer is on fire.\n"
    )
    parsed = parse_commands(text)
    assert parsed.ok
    assert [c.name for c in parsed.commands] == ["fwd", "priority"]
    assert parsed.body.startswith("---------- Forwarded message ---------\nFrom: Carol")
    assert parsed.body.endswith("The printer is on fire.")


def test_note_keeps_the_whole_body() -> None:
    parsed = parse_commands("#note\nCustomer is difficult;\n#1 priority is calm.\n")
    assert [c.name for c in parsed.commands] == ["note"]
    assert parsed.body == "Customer is difficult;\n#1 priority is calm."


# --- limits and robustness --------------------------------------------------------------


def test_block_is_limited_to_fifty_lines() -> None:
    lines = [f"#tag t{i}" for i in range(60)]
    parsed = parse_commands("\n".join(lines) + "\nbody")
    assert len(parsed.commands) == 50
    (error,) = parsed.errors
    assert error.line == 51
    assert "too long" in error.message
    assert parsed.body == "\n".join(lines[50:]) + "\nbody"


def test_blank_lines_count_towards_the_limit_and_text_after_is_body() -> None:
    parsed = parse_commands("#take" + "\n" * 100 + "Hello")
    assert parsed.ok
    assert parsed.body == "Hello"


def test_block_is_limited_to_ten_thousand_characters() -> None:
    parsed = parse_commands("#take\n#category " + "x" * 20_000 + "\nbody")
    assert [c.name for c in parsed.commands] == ["take"]
    assert parsed.errors[0].line == 2
    assert "too long" in parsed.errors[0].message
    assert len(parsed.errors[0].text) == 200
    assert parsed.body.startswith("#category xxx")
    assert parsed.body.endswith("\nbody")


def test_huge_text_is_fast() -> None:
    text = "#take\n" + ("lorem ipsum " * 10 + "\n") * 200_000
    start = time.monotonic()
    parsed = parse_commands(text)
    assert time.monotonic() - start < 5
    assert [c.name for c in parsed.commands] == ["take"]
    assert parsed.body.startswith("lorem ipsum")


def test_huge_single_line_is_fast() -> None:
    for text in ("#" + "a" * 5_000_000, "\u200b" * 1_000_000 + "#take", " " * 5_000_000, "x" * 5_000_000):
        start = time.monotonic()
        parse_commands(text)
        assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "text",
    [
        "\x00",
        "#\x00",
        "#take\x00",
        "#status \x00resolved",
        "\u202e#take",
        "#tag \u202evpn",
        "\udcff#take",
        "#\udcff",
        "#" + "\u0301" * 10,
        "#\u0130",  # lowercases to two characters
        "#ß",
        "#kb " + "\U0001f600" * 300,
        "\n" * 100_000,
        "#a\n" * 100_000,
        "\r" * 1000 + "#take",
        "#\u00aa",  # a letter with no case
        "#category \u2028 x",
    ],
)
def test_garbage_never_raises(text: str) -> None:
    parsed = parse_commands(text)
    assert isinstance(parsed, ParsedCommands)
    for error in parsed.errors:
        assert len(error.text) <= 200
        error.message.encode("utf-8")
        error.text.encode("utf-8")


def test_non_str_input_does_not_raise() -> None:
    assert parse_commands(None) == ParsedCommands((), (), "")  # type: ignore[arg-type]
    assert parse_commands(b"#take\nhi").commands[0].name == "take"  # type: ignore[arg-type]


def test_random_input_never_raises() -> None:
    rng = random.Random(20260101)
    alphabet = "#: \t\n\r,\u00a0\u200b\ufeff\x00abcstuzABZ019._-[]\u202e\u00e9\udcff\U0001f600"
    pieces = ["#status ", "#tag ", "#assign ", "#take", "#kb ", "#severity business ", "\n", "#1", "# "]
    for _ in range(3000):
        chunks = [rng.choice(pieces) if rng.random() < 0.3 else rng.choice(alphabet) for _ in range(rng.randint(0, 80))]
        text = "".join(chunks)
        parsed = parse_commands(text)
        for command in parsed.commands:
            assert command.line >= 1
            assert all("\x00" not in a for a in command.args)
        for error in parsed.errors:
            assert error.line >= 1
            assert len(error.text) <= 200


# --- HELP --------------------------------------------------------------------------------


def test_help_lists_every_command_with_its_form() -> None:
    lines = HELP.splitlines()
    for form in [
        "#assign AGENT_ID",
        "#take",
        "#status open|pending|restored|resolved|closed, or #status pending until=YYYY-MM-DD",
        "#priority critical|high|medium|low",
        "#severity business-halted|business-interrupted|user-affected",
        "#category TEXT",
        "#tag TAG [TAG ...]",
        "#untag TAG [TAG ...]",
        "#unassign",
        "#requester ADDRESS",
        "#note",
        "#merge TICKET_REF",
        "#kb [TITLE]",
        "#ack",
        "#fwd",
    ]:
        matching = [line for line in lines if line.startswith(form + " -- ")]
        assert len(matching) == 1, form
        assert len(matching[0]) > len(form) + 10  # with an explanation
    HELP.encode("ascii")


def test_help_is_not_parsed_as_body_commands_when_quoted_back() -> None:
    # An agent pasting HELP at the top would run into the intro line first: no commands.
    assert parse_commands(HELP).commands == ()


# --- #cc and who reads the text (issue 15) -------------------------------------------------


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("#cc", "say add or remove"),
        ("#cc dave@customer.example", "say add or remove"),
        ("#cc add", "address missing"),
        ("#cc add dave", "'dave' is not a mail address"),
        ("#cc add dave@customer.example, eve@x.example", "is not a mail address"),
        ("#cc add dave@customer.example\r\nBcc: eve@x.example", "is not a mail address"),
    ],
)
def test_cc_errors(line: str, fragment: str) -> None:
    assert fragment in only_error(line.replace("\r\n", " ")).message


def test_cc_may_be_repeated_and_note_contradicts_reply() -> None:
    parsed = parse_commands("#cc add a@x.example\n#cc remove b@x.example\nText")
    assert parsed.ok and [c.args for c in parsed.commands] == [("add", "a@x.example"), ("remove", "b@x.example")]
    error = only_error("#note\n#reply\nText")
    assert "both set who reads the text" in error.message and "#note, or #reply" in error.message
    assert "add #reply" in HELP


# --- #requester, #unassign, #untag (issue 21) ------------------------------------------------


def test_requester_unassign_untag_parse() -> None:
    parsed = parse_commands("#requester: <Jane.Doe@Customer.example>\n#unassign\n#untag VPN, urgent\n#untag wifi\nText")
    assert parsed.ok, parsed.errors
    assert [(c.name, c.args) for c in parsed.commands] == [
        ("requester", ("jane.doe@customer.example",)),
        ("unassign", ()),
        ("untag", ("vpn", "urgent")),
        ("untag", ("wifi",)),
    ]
    # Outlook's rendering of a pasted address.
    outlook = parse_commands("#requester jane@customer.example<mailto:jane@customer.example>\nText")
    assert outlook.commands[0].args == ("jane@customer.example",)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("#requester", "address missing"),
        ("#requester jane", "'jane' is not a mail address"),
        ("#requester jane@customer.example, joe@customer.example", "give exactly one address"),
        ("#requester jane@customer.example,joe@customer.example", "give exactly one address"),
        ("#requester Jane Doe <jane@customer.example>", "give exactly one address"),
        ("#requester friends: jane@customer.example;", "give exactly one address"),
        ("#requester friends:jane@customer.example;", "give exactly one address"),
        ("#requester jane@customer.example\u2028Bcc: eve@x.example", "give exactly one address"),
        ("#requester jane@customer.example%0D%0ABcc:eve@x.example", "is not a mail address"),
        ("#requester jane@customer.example\x85Bcc:eve@x.example", "control characters"),
        ("#requester jane@customer.example\rBcc: eve@x.example", None),
        ("#unassign bob", "takes nothing after it"),
        ("#untag", "tag missing"),
        ("#untag no/slash", "is not a tag"),
        ("#unassign\n#take", "both set the assignee"),
        ("#requester a@x.example\n#requester b@x.example", "given twice"),
    ],
)
def test_requester_unassign_untag_errors(line: str, fragment: str | None) -> None:
    parsed = parse_commands(line + "\nText")
    if fragment is None:
        # A bare CR ends the line: the address stands alone and the rest is body text.
        assert parsed.ok and parsed.commands[0].args == ("jane@customer.example",)
        assert parsed.body.startswith("Bcc:")
        return
    assert not parsed.ok
    assert fragment in parsed.errors[-1].message, parsed.errors[-1].message


def test_parse_argument_reads_as_the_mail_does() -> None:
    assert parse_argument("requester", " Jane@Customer.example ") == ("jane@customer.example",)
    assert parse_argument("cc", "add <a@x.example>") == ("add", "a@x.example")
    assert parse_argument("untag", "VPN") == ("vpn",)
    for bad in ("jane@customer.example\r\nBcc: eve@x.example", "a@x.example, b@x.example", "<>", ""):
        with pytest.raises(ValueError):
            parse_argument("requester", bad)


# --- #contact merge ----------------------------------------------------------------------


def test_contact_merge_parses_one_address() -> None:
    parsed = parse_commands("#contact merge <Rita.R@Gmail.example>\n#note\nShe writes from Gmail too.")
    assert parsed.ok, parsed.errors
    assert [(c.name, c.args) for c in parsed.commands] == [("contact", ("merge", "rita.r@gmail.example")), ("note", ())]
    outlook = parse_commands("#contact\u00a0merge\u00a0rita@home.example<mailto:rita@home.example>\nText")
    assert outlook.commands[0].args == ("merge", "rita@home.example")
    assert any(line.startswith("#contact merge ADDRESS -- ") for line in HELP.splitlines())


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("#contact", "say merge, then the address"),
        ("#contact join rita@home.example", "say merge, then the address"),
        ("#contact merge", "address missing"),
        ("#contact merge rita", "'rita' is not a mail address"),
        ("#contact merge a@x.example, b@x.example", "give exactly one address"),
        ("#contact merge Rita <rita@home.example>", "give exactly one address"),
        ("#contact merge rita@home.example%0D%0ABcc:eve@x.example", "is not a mail address"),
        ("#contact merge a@x.example\n#contact merge b@x.example", "given twice"),
    ],
)
def test_contact_merge_errors(line: str, fragment: str) -> None:
    parsed = parse_commands(line + "\nText")
    assert not parsed.ok
    assert fragment in parsed.errors[-1].message, parsed.errors[-1].message
