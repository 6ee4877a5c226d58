// Output helpers shared by every subcommand: `--output-format text|json|json-pretty`, tables drawn
// the way proxmox-backup-client draws them, PBS's human-readable sizes, and error reporting.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "pbskit/formats/status.h"
#include "registry.h"

namespace pbskit::cli {

// Renders one cell: `value` is record[key] (null when absent), `record` the whole row.
using CellRenderer =
    std::function<std::string(const boost::json::value& value, const boost::json::object& record)>;

struct Column {
  std::string key;              // property name in each row object
  std::string header;           // column title; empty = key
  bool right_align = false;     // numbers are right-aligned in PBS tables
  CellRenderer render = nullptr;  // default: strings as is, numbers in decimal, bools 1/0
};

struct TableOptions {
  // Sort rows by these keys (ascending unless .second); empty = keep the given order.
  std::vector<std::pair<std::string, bool>> sort_by;
  bool noborder = false;  // PROXMOX_OUTPUT_NO_BORDER
  bool noheader = false;  // PROXMOX_OUTPUT_NO_HEADER
  bool ascii = false;     // ASCII delimiters (set automatically when the locale is not UTF-8)
};

// TableOptions defaulted from the environment the way PBS tools do it.
TableOptions DefaultTableOptions();

// Writes `rows` as a table: ┌─┬─┐ top, ╞═╪═╡ under the header, ├─┼─┤ between rows, └─┴─┘ last.
// Multi-line cells span several text lines. Prints nothing for an empty list (as PBS does).
void PrintTable(std::ostream& out, std::vector<boost::json::object> rows,
                const std::vector<Column>& columns, const TableOptions& options);

// Writes one object as a two-column Name/Value table (PBS's `format_object`). Properties whose
// value is absent are skipped.
void PrintObject(std::ostream& out, const boost::json::object& data,
                 const std::vector<Column>& rows, const TableOptions& options);

// JSON output for `json` (compact) and `json-pretty`, byte-compatible with serde_json; a newline
// follows, as with proxmox-backup-client.
void PrintJson(std::ostream& out, const boost::json::value& value, const std::string& format);

// For commands whose text output is a table: json formats print `data` as JSON, text prints the
// table. Returns 0.
int PrintList(const GlobalOptions& g, boost::json::array data, const std::vector<Column>& columns,
              TableOptions options = DefaultTableOptions());
// The same for a single object.
int PrintRecord(const GlobalOptions& g, const boost::json::object& data,
                const std::vector<Column>& rows, TableOptions options = DefaultTableOptions());

// Prints group or snapshot notes: the text itself, or {"notes": ...} for the JSON formats.
int PrintNotes(const GlobalOptions& g, const std::string& notes);

// Prints "Error: <message>" to stderr and returns `exit_code` (1 by default; pass 2 for usage
// or configuration errors).
int ReportError(const Status& status, int exit_code = 1);
// Exit code for a failed Status: 2 for InvalidArgument (bad arguments), 1 otherwise.
int ExitCodeFor(const Status& status);

// PBS's HumanByte: binary units, value rounded to 3 decimals printed in shortest form
// ("9 MiB", "1.234 GiB", "512 B").
std::string HumanBytes(uint64_t bytes);
// RFC 3339 UTC time ("2024-05-01T11:00:00Z") for epoch seconds.
std::string Rfc3339Utc(int64_t epoch);
// True when stdout (fd 1) is a terminal (progress bars vs plain lines).
bool StdoutIsTerminal();
bool StderrIsTerminal();

}  // namespace pbskit::cli
