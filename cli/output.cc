#include "output.h"

#include <langinfo.h>
#include <unistd.h>

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <sstream>

#include "pbskit/formats/json.h"

namespace pbskit::cli {
namespace {

// Display width of UTF-8 text: one column per code point (East Asian wide forms count two).
size_t DisplayWidth(const std::string& s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else if (c >= 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xc0) {
      len = 2;
      cp = c & 0x1f;
    }
    for (size_t k = 1; k < len && i + k < s.size(); k++)
      cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    i += len;
    bool wide = (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
                (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
                (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) ||
                (cp >= 0x20000 && cp <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}

std::string DefaultRender(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return "";
    case boost::json::kind::bool_: return v.get_bool() ? "1" : "0";
    case boost::json::kind::int64: return std::to_string(v.get_int64());
    case boost::json::kind::uint64: return std::to_string(v.get_uint64());
    case boost::json::kind::double_: {
      std::ostringstream o;
      o << v.get_double();
      return o.str();
    }
    case boost::json::kind::string: return std::string(v.get_string());
    default: return ToSerdeCompact(v);
  }
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

struct TableColumn {
  std::string header;
  std::vector<std::vector<std::string>> cells;
  size_t width = 0;
  bool right_align = false;
};

std::string Repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i++) out += s;
  return out;
}

std::string Border(const std::vector<TableColumn>& cols, bool ascii, const char* first,
                   const char* mid, const char* last, const char* fill, const char* afill) {
  std::string line;
  for (size_t i = 0; i < cols.size(); i++) {
    line += ascii ? "+" : (i == 0 ? first : mid);
    line += Repeat(ascii ? afill : fill, cols[i].width + 2);
  }
  line += ascii ? "+" : last;
  return line;
}

void Pad(std::string* out, const std::string& text, size_t width, bool right) {
  size_t w = DisplayWidth(text);
  std::string pad(width > w ? width - w : 0, ' ');
  *out += right ? pad + text : text + pad;
}

void Render(std::ostream& out, const std::vector<TableColumn>& cols, const TableOptions& o) {
  const std::string sep = o.ascii ? "|" : "│";
  if (!o.noborder) out << Border(cols, o.ascii, "┌", "┬", "┐", "─", "=") << "\n";
  if (!(o.noheader || o.noborder)) {
    std::string header;
    for (const auto& c : cols) {
      header += sep + " ";
      Pad(&header, c.header, c.width, c.right_align);
      header += " ";
    }
    out << header << sep << "\n";
    out << Border(cols, o.ascii, "╞", "╪", "╡", "═", "=") << "\n";
  }
  size_t rows = cols.empty() ? 0 : cols[0].cells.size();
  for (size_t r = 0; r < rows; r++) {
    size_t max_lines = 0;
    for (const auto& c : cols) max_lines = std::max(max_lines, c.cells[r].size());
    for (size_t l = 0; l < max_lines; l++) {
      std::string text;
      for (size_t i = 0; i < cols.size(); i++) {
        const auto& lines = cols[i].cells[r];
        std::string cell = l < lines.size() ? lines[l] : "";
        if (o.noborder) {
          if (i > 0) text += " ";
        } else {
          text += sep + " ";
        }
        Pad(&text, cell, cols[i].width, cols[i].right_align);
        if (!o.noborder) text += " ";
      }
      if (!o.noborder) text += sep;
      out << text << "\n";
    }
    if (!o.noborder) {
      if (r + 1 == rows)
        out << Border(cols, o.ascii, "└", "┴", "┘", "─", "=") << "\n";
      else
        out << Border(cols, o.ascii, "├", "┼", "┤", "─", "-") << "\n";
    }
  }
}

int CompareValues(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.to_number<double>(), y = b.to_number<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  std::string x = a.is_string() ? std::string(a.get_string()) : "";
  std::string y = b.is_string() ? std::string(b.get_string()) : "";
  return x.compare(y) < 0 ? -1 : (x == y ? 0 : 1);
}

const boost::json::value& Field(const boost::json::object& o, const std::string& key) {
  static const boost::json::value kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : it->value();
}

}  // namespace

TableOptions DefaultTableOptions() {
  TableOptions o;
  o.noborder = std::getenv("PROXMOX_OUTPUT_NO_BORDER") != nullptr;
  o.noheader = std::getenv("PROXMOX_OUTPUT_NO_HEADER") != nullptr;
  std::setlocale(LC_CTYPE, "");
  o.ascii = std::string(nl_langinfo(CODESET)) != "UTF-8";
  return o;
}

void PrintTable(std::ostream& out, std::vector<boost::json::object> rows,
                const std::vector<Column>& columns, const TableOptions& options) {
  if (rows.empty() || columns.empty()) return;
  if (!options.sort_by.empty()) {
    std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
      for (const auto& [key, desc] : options.sort_by) {
        int c = CompareValues(Field(a, key), Field(b, key));
        if (c != 0) return desc ? c > 0 : c < 0;
      }
      return false;
    });
  }
  std::vector<TableColumn> cols;
  for (const auto& c : columns) {
    TableColumn tc;
    tc.header = c.header.empty() ? c.key : c.header;
    tc.right_align = c.right_align;
    tc.width = (options.noheader || options.noborder) ? 0 : DisplayWidth(tc.header);
    for (const auto& row : rows) {
      const auto& v = Field(row, c.key);
      auto lines = SplitLines(c.render ? c.render(v, row) : DefaultRender(v));
      for (const auto& l : lines) tc.width = std::max(tc.width, DisplayWidth(l));
      tc.cells.push_back(std::move(lines));
    }
    cols.push_back(std::move(tc));
  }
  Render(out, cols, options);
}

void PrintObject(std::ostream& out, const boost::json::object& data,
                 const std::vector<Column>& rows, const TableOptions& options) {
  TableColumn names, values;
  names.header = "Name";
  values.header = "Value";
  bool hidden = options.noheader || options.noborder;
  names.width = hidden ? 0 : 4;
  values.width = hidden ? 0 : 5;
  values.right_align = true;
  for (const auto& c : rows) {
    auto it = data.find(c.key);
    if (it == data.end()) continue;
    std::string name = c.header.empty() ? c.key : c.header;
    names.width = std::max(names.width, DisplayWidth(name));
    names.cells.push_back({name});
    auto lines = SplitLines(c.render ? c.render(it->value(), data) : DefaultRender(it->value()));
    for (const auto& l : lines) values.width = std::max(values.width, DisplayWidth(l));
    values.cells.push_back(std::move(lines));
    if (!c.right_align) values.right_align = false;
  }
  if (names.cells.empty()) return;
  Render(out, {names, values}, options);
}

void PrintJson(std::ostream& out, const boost::json::value& value, const std::string& format) {
  out << (format == "json-pretty" ? ToSerdePretty(value) : ToSerdeCompact(value)) << "\n";
}

int PrintList(const GlobalOptions& g, boost::json::array data, const std::vector<Column>& columns,
              TableOptions options) {
  if (g.output_format != "text") {
    PrintJson(std::cout, data, g.output_format);
    return 0;
  }
  std::vector<boost::json::object> rows;
  for (auto& v : data)
    if (v.is_object()) rows.push_back(std::move(v.as_object()));
  PrintTable(std::cout, std::move(rows), columns, options);
  return 0;
}

int PrintRecord(const GlobalOptions& g, const boost::json::object& data,
                const std::vector<Column>& rows, TableOptions options) {
  if (g.output_format != "text") {
    PrintJson(std::cout, data, g.output_format);
    return 0;
  }
  PrintObject(std::cout, data, rows, options);
  return 0;
}

int PrintNotes(const GlobalOptions& g, const std::string& notes) {
  if (g.output_format == "text") {
    std::cout << notes << "\n";
  } else {
    boost::json::object o;
    o["notes"] = notes;
    PrintJson(std::cout, o, g.output_format);
  }
  return 0;
}

int ReportError(const Status& status, int exit_code) {
  std::cerr << "Error: " << status.message() << "\n";
  return exit_code;
}

int ExitCodeFor(const Status& status) {
  return status.code() == Code::kInvalidArgument ? 2 : 1;
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double size = static_cast<double>(bytes);
  int unit = 0;
  while (size >= 1024.0 && unit < 6) {
    size /= 1024.0;
    unit++;
  }
  double rounded = std::round(size * 1000.0) / 1000.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", rounded);
  std::string s = buf;  // shortest form: strip trailing zeros and a bare point
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s + " " + kUnits[unit];
}

std::string Rfc3339Utc(int64_t epoch) {
  std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool StdoutIsTerminal() { return isatty(1) == 1; }
bool StderrIsTerminal() { return isatty(2) == 1; }

}  // namespace pbskit::cli
