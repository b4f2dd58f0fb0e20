"""The exit-status table has one owner (cli/exit_codes.cc): `stack --help`
prints it, and the spec's table and the tests' EXIT map must say the same."""
import os
import re

from stacktest import EXIT, StackTestCase, main, stack

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "spec", "block-device.md")


def help_table():
    r = stack("--help", check=0)
    rows = re.findall(r"^\s+(\d+)\s+(\w+): (.+)$", r.out, flags=re.M)
    return [(int(n), name, meaning.strip()) for n, name, meaning in rows]


def spec_table():
    with open(SPEC, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Errors and exit statuses", 1)[1]
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (.+?) \|$", section, flags=re.M)
    return [(int(n), name, meaning.strip()) for name, n, meaning in rows]


class ExitTable(StackTestCase):
    def test_help_lists_every_code_once(self):
        rows = help_table()
        self.assertEqual(len(rows), 13, rows)
        self.assertEqual(sorted(n for n, _, _ in rows), list(range(13)))
        self.assertEqual(len({name for _, name, _ in rows}), 13)

    def test_spec_agrees_with_help(self):
        self.assertEqual(spec_table(), help_table())

    def test_tests_agree_with_help(self):
        self.assertEqual(sorted(EXIT.values()), sorted(n for n, _, _ in help_table()))

    def test_a_failure_exits_with_its_tables_status(self):
        by_name = {name: n for n, name, _ in help_table()}
        r = stack("volume", "list", "-p", self.path("missing.stk"))
        code = r.err.split(":")[1].strip()
        self.assertEqual(r.rc, by_name[code], r.err)


if __name__ == "__main__":
    main()
