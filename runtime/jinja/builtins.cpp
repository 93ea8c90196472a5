#include "runtime/jinja/builtins.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <set>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"

namespace sparq::jinja {

namespace {

[[noreturn]] void error_at(int line, const std::string& msg) { fail("chat template: line ", line, ": ", msg); }

// Digits as an index; nullopt when they do not fit (such an index is past any list anyway).
std::optional<size_t> digits_index(const std::string& digits) {
  size_t i = 0;
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), i);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;
  return i;
}

// Python's int(float): NaN has no integer (nullopt); past int64 (Python would make a big
// integer) the template is refused rather than the conversion overflowing.
std::optional<int64_t> float_to_int(double f, int line) {
  if (std::isnan(f)) return std::nullopt;
  if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) error_at(line, "int(): value out of range");
  return static_cast<int64_t>(f);
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<std::pair<size_t, size_t>> cp_spans(const std::string& s) {  // (offset, length) per code point
  std::vector<std::pair<size_t, size_t>> v;
  for (size_t i = 0; i < s.size();) {
    size_t n = std::min<size_t>(utf8::seq_len(static_cast<unsigned char>(s[i])), s.size() - i);
    v.push_back({i, n});
    i += n;
  }
  return v;
}

char32_t cp_at(const std::string& s, size_t off) {
  char32_t cp;
  return utf8::decode(s, off, cp) ? cp : 0xFFFD;
}

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}
std::string ascii_upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}
bool is_alpha_cp(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0xC0; }

std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') out += prev_cased ? c : static_cast<char>(c - 'a' + 'A');
    else if (c >= 'A' && c <= 'Z') out += prev_cased ? static_cast<char>(c - 'A' + 'a') : c;
    else out += c;
    prev_cased = is_alpha_cp(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80;
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    std::string out = to;
    for (auto [o, n] : cp_spans(s)) {
      if (count >= 0 && count-- == 0) {
        out += s.substr(o);
        return out;
      }
      out += s.substr(o, n) + to;
    }
    return out;
  }
  std::string out;
  size_t pos = 0;
  while (count != 0) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    if (count > 0) --count;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

List py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    auto spans = cp_spans(s);
    size_t k = 0;
    while (k < spans.size()) {
      while (k < spans.size() && py_isspace(cp_at(s, spans[k].first))) ++k;
      if (k >= spans.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        // rest of the string, right-stripped of nothing (Python keeps trailing whitespace? no: strips)
        std::string rest = s.substr(spans[k].first);
        out.push_back(Value::string(py_strip(rest, false, true, Value::none())));
        return out;
      }
      size_t start = spans[k].first;
      while (k < spans.size() && !py_isspace(cp_at(s, spans[k].first))) ++k;
      size_t end = k < spans.size() ? spans[k].first : s.size();
      out.push_back(Value::string(s.substr(start, end - start)));
    }
    return out;
  }
  if (!sep.is_string()) fail("chat template: split() separator must be a string");
  if (sep.s.empty()) fail("chat template: split() got an empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t hit = s.find(sep.s, pos);
    if (hit == std::string::npos) break;
    out.push_back(Value::string(s.substr(pos, hit - pos)));
    pos = hit + sep.s.size();
  }
  out.push_back(Value::string(s.substr(pos)));
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Follows a dotted attribute path ("a.b" or "0") as Jinja's make_attrgetter does.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_dict()) {
      const Value* x = cur.dict->find(part);
      cur = x ? *x : Value::undefined(part);
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const auto i = digits_index(part);
      cur = i && *i < cur.list->size() ? (*cur.list)[*i] : Value::undefined(part);
    } else {
      cur = Value::undefined(part);
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

std::string format_percent(const std::string& fmt, const List& args, int line) {
  std::string out;
  size_t ai = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (i + 1 >= fmt.size()) error_at(line, "incomplete format in '%' formatting");
    char c = fmt[++i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (ai >= args.size()) error_at(line, "not enough arguments for format string");
    const Value& a = args[ai++];
    if (c == 's') out += a.str();
    else if (c == 'r') out += a.repr();
    else if (c == 'd' || c == 'i') out += std::to_string(a.kind == Value::Kind::Float ? int64_t(a.f) : a.i);
    else error_at(line, std::string("unsupported format character '%") + c + "'");
  }
  return out;
}

int64_t int_arg(const Value& v, int line, const char* what) {
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b;
  error_at(line, std::string(what) + " must be an integer");
}

}  // namespace

size_t py_len(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string py_strip(const std::string& s, bool left, bool right, const Value& chars) {
  auto spans = cp_spans(s);
  std::set<char32_t> set;
  bool custom = chars.is_string();
  if (custom)
    for (auto [o, n] : cp_spans(chars.s)) set.insert(cp_at(chars.s, o));
  auto strip_me = [&](size_t k) {
    char32_t c = cp_at(s, spans[k].first);
    return custom ? set.count(c) > 0 : py_isspace(c);
  };
  size_t b = 0, e = spans.size();
  if (left)
    while (b < e && strip_me(b)) ++b;
  if (right)
    while (e > b && strip_me(e - 1)) --e;
  if (b >= e) return {};
  size_t ob = spans[b].first, oe = e < spans.size() ? spans[e].first : s.size();
  return s.substr(ob, oe - ob);
}

List iterate(const Value& v, int line) {
  switch (v.kind) {
    case Value::Kind::List: return *v.list;
    case Value::Kind::Dict: {
      List keys;
      for (auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      List cps;
      for (auto [o, n] : cp_spans(v.s)) cps.push_back(Value::string(v.s.substr(o, n)));
      return cps;
    }
    case Value::Kind::Undefined: return {};
    default: error_at(line, "'" + v.type_name() + "' object is not iterable");
  }
}

bool is_method_name(const Value& obj, const std::string& name) {
  static const std::set<std::string> str_methods = {
      "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper", "lower", "title", "capitalize",
      "replace", "find", "rfind", "count", "join", "format", "splitlines", "isdigit", "isspace", "isalpha", "isalnum",
      "islower", "isupper", "index"};
  static const std::set<std::string> dict_methods = {"items", "keys", "values", "get", "copy"};
  static const std::set<std::string> list_methods = {"index", "count", "copy", "append", "pop", "insert", "extend",
                                                     "remove", "sort", "reverse"};
  if (obj.is_string()) return str_methods.count(name) > 0;
  if (obj.is_dict()) return dict_methods.count(name) > 0;
  if (obj.is_list()) return list_methods.count(name) > 0;
  return false;
}

bool call_method(const Value& obj, const std::string& name, Args& a, int line, Value& out) {
  const Value none = Value::none();
  if (obj.is_string()) {
    const std::string& s = obj.s;
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      out = Value::string(py_strip(s, name != "rstrip", name != "lstrip", a.get(0, "chars", none)));
    } else if (name == "split" || name == "rsplit") {
      int64_t maxsplit = -1;
      const Value& m = a.get(1, "maxsplit", Value::integer(-1));
      maxsplit = int_arg(m, line, "maxsplit");
      if (name == "rsplit" && maxsplit >= 0) {
        // rsplit with a limit: split everything, then re-join the leading parts.
        List all = py_split(s, a.get(0, "sep", none), -1);
        const Value& sep = a.get(0, "sep", none);
        if (static_cast<int64_t>(all.size()) > maxsplit + 1 && sep.is_string()) {
          std::string head;
          size_t keep = all.size() - static_cast<size_t>(maxsplit);
          for (size_t k = 0; k < keep; ++k) head += (k ? sep.s : "") + all[k].s;
          List r{Value::string(head)};
          r.insert(r.end(), all.begin() + keep, all.end());
          all = r;
        }
        out = Value::make_list(std::move(all));
      } else {
        out = Value::make_list(py_split(s, a.get(0, "sep", none), maxsplit));
      }
    } else if (name == "startswith" || name == "endswith") {
      const Value& p = a.get(0, "prefix", none);
      List opts = p.is_list() ? *p.list : List{p};
      bool r = false;
      for (auto& o : opts) {
        if (!o.is_string()) error_at(line, name + "() argument must be a string");
        if (name == "startswith" ? s.compare(0, o.s.size(), o.s) == 0
                                 : s.size() >= o.s.size() && s.compare(s.size() - o.s.size(), o.s.size(), o.s) == 0)
          r = true;
      }
      out = Value::boolean(r);
    } else if (name == "upper") {
      out = Value::string(ascii_upper(s));
    } else if (name == "lower") {
      out = Value::string(ascii_lower(s));
    } else if (name == "title") {
      out = Value::string(py_title(s));
    } else if (name == "capitalize") {
      out = Value::string(py_capitalize(s));
    } else if (name == "replace") {
      const Value& c = a.get(2, "count", Value::integer(-1));
      out = Value::string(replace_all(s, a.get(0, "old", none).str(), a.get(1, "new", none).str(), int_arg(c, line, "count")));
    } else if (name == "find" || name == "rfind" || name == "index") {
      std::string sub = a.get(0, "sub", none).str();
      size_t hit = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (hit == std::string::npos && name == "index") error_at(line, "substring not found");
      out = Value::integer(hit == std::string::npos ? -1 : static_cast<int64_t>(py_len(s.substr(0, hit))));
    } else if (name == "count") {
      std::string sub = a.get(0, "sub", none).str();
      int64_t n = 0;
      if (!sub.empty())
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      out = Value::integer(n);
    } else if (name == "join") {
      List items = iterate(a.get(0, "iterable", none), line);
      std::string r;
      for (size_t k = 0; k < items.size(); ++k) r += (k ? s : "") + items[k].str();
      out = Value::string(r);
    } else if (name == "format") {
      std::string r;
      size_t auto_idx = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
          r += '{';
          ++i;
        } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
          r += '}';
          ++i;
        } else if (s[i] == '{') {
          size_t close = s.find('}', i);
          if (close == std::string::npos) error_at(line, "unmatched '{' in format string");
          std::string field = s.substr(i + 1, close - i - 1);
          if (field.empty()) {
            r += a.get(auto_idx++, "", none).str();
          } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
            r += a.get(digits_index(field).value_or(SIZE_MAX - 1), "", none).str();
          } else {
            r += a.get(SIZE_MAX, field, Value::undefined(field)).str();
          }
          i = close;
        } else {
          r += s[i];
        }
      }
      out = Value::string(r);
    } else if (name == "splitlines") {
      List l;
      size_t pos = 0;
      while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        std::string part = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (!part.empty() && part.back() == '\r') part.pop_back();
        l.push_back(Value::string(part));
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
      out = Value::make_list(std::move(l));
    } else if (name.rfind("is", 0) == 0) {
      bool r = !s.empty();
      for (auto [o, n] : cp_spans(s)) {
        char32_t c = cp_at(s, o);
        bool digit = c >= '0' && c <= '9', alpha = is_alpha_cp(c);
        if (name == "isdigit") r = r && digit;
        else if (name == "isspace") r = r && py_isspace(c);
        else if (name == "isalpha") r = r && alpha;
        else if (name == "isalnum") r = r && (alpha || digit);
        else if (name == "islower") r = r && !(c >= 'A' && c <= 'Z');
        else if (name == "isupper") r = r && !(c >= 'a' && c <= 'z');
      }
      out = Value::boolean(r);
    } else {
      return false;
    }
    return true;
  }
  if (obj.is_dict()) {
    if (name == "items") {
      List l;
      for (auto& [k, v] : obj.dict->items) l.push_back(Value::make_list({Value::string(k), v}));
      out = Value::make_list(std::move(l));
    } else if (name == "keys") {
      List l;
      for (auto& kv : obj.dict->items) l.push_back(Value::string(kv.first));
      out = Value::make_list(std::move(l));
    } else if (name == "values") {
      List l;
      for (auto& kv : obj.dict->items) l.push_back(kv.second);
      out = Value::make_list(std::move(l));
    } else if (name == "get") {
      const Value& k = a.get(0, "key", none);
      const Value* v = k.is_string() ? obj.dict->find(k.s) : nullptr;
      out = v ? *v : a.get(1, "default", none);
    } else if (name == "copy") {
      out = Value::make_dict();
      out.dict->items = obj.dict->items;
    } else {
      return false;
    }
    return true;
  }
  if (obj.is_list()) {
    if (name == "index" || name == "count") {
      const Value& x = a.get(0, "value", none);
      int64_t n = 0, idx = -1;
      for (size_t k = 0; k < obj.list->size(); ++k)
        if (equals((*obj.list)[k], x)) {
          if (idx < 0) idx = static_cast<int64_t>(k);
          ++n;
        }
      if (name == "index" && idx < 0) error_at(line, "value is not in list");
      out = Value::integer(name == "index" ? idx : n);
    } else if (name == "copy") {
      out = Value::make_list(*obj.list);
    } else {
      error_at(line, "list." + name + "() modifies a list, which the sandboxed template environment forbids");
    }
    return true;
  }
  return false;
}

bool apply_test(const std::string& name, const Value& v, Args& a, int line) {
  using K = Value::Kind;
  const Value none = Value::none();
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == K::Bool;
  if (name == "true") return v.kind == K::Bool && v.b;
  if (name == "false") return v.kind == K::Bool && !v.b;
  if (name == "integer") return v.kind == K::Int;
  if (name == "float") return v.kind == K::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.kind == K::Function;
  if (name == "lower") return v.is_string() && ascii_lower(v.s) == v.s;
  if (name == "upper") return v.is_string() && ascii_upper(v.s) == v.s;
  if (name == "odd" || name == "even") {
    int64_t x = int_arg(v, line, "the value tested for odd/even");
    return name == "odd" ? (x % 2 != 0) : (x % 2 == 0);
  }
  if (name == "divisibleby") {
    int64_t d = int_arg(a.get(0, "num", none), line, "divisibleby's argument");
    return d != 0 && int_arg(v, line, "the value tested") % d == 0;
  }
  const Value& other = a.get(0, "b", none);
  if (name == "equalto" || name == "eq" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  if (name == "sameas") {
    if (v.kind != other.kind) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.kind == K::Bool) return v.b == other.b;
    if (v.is_list()) return v.list == other.list;
    if (v.is_dict()) return v.dict == other.dict;
    return equals(v, other);
  }
  if (name == "lt" || name == "<") return compare(v, other) < 0;
  if (name == "le" || name == "<=") return compare(v, other) <= 0;
  if (name == "gt" || name == ">") return compare(v, other) > 0;
  if (name == "ge" || name == ">=") return compare(v, other) >= 0;
  if (name == "in") {
    if (other.is_string()) return v.is_string() && other.s.find(v.s) != std::string::npos;
    if (other.is_list())
      return std::any_of(other.list->begin(), other.list->end(), [&](const Value& x) { return equals(x, v); });
    if (other.is_dict()) return v.is_string() && other.dict->find(v.s);
    return false;
  }
  error_at(line, "unknown test '" + name + "'");
}

Value apply_filter(const std::string& name, const Value& v, Args& a, int line) {
  using K = Value::Kind;
  const Value none = Value::none();
  auto need_string = [&](const Value& x) -> std::string {
    if (x.is_undefined()) return "";
    return x.str();
  };
  if (name == "trim") return Value::string(py_strip(need_string(v), true, true, a.get(0, "chars", none)));
  if (name == "tojson") {
    const Value& ind = a.get(0, "indent", none);
    int indent = ind.is_none() ? -1 : static_cast<int>(int_arg(ind, line, "tojson indent"));
    std::string item_sep, key_sep;
    const Value& seps = a.get(1, "separators", none);
    if (seps.is_list() && seps.list->size() == 2) {
      item_sep = (*seps.list)[0].str();
      key_sep = (*seps.list)[1].str();
    }
    return Value::string(to_json_text(v, indent, a.get(2, "sort_keys", Value::boolean(false)).truthy(), item_sep, key_sep));
  }
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value::integer(static_cast<int64_t>(py_len(v.s)));
    if (v.is_list()) return Value::integer(static_cast<int64_t>(v.list->size()));
    if (v.is_dict()) return Value::integer(static_cast<int64_t>(v.dict->items.size()));
    if (v.is_undefined()) return Value::integer(0);
    error_at(line, "object of type '" + v.type_name() + "' has no len()");
  }
  if (name == "string") return Value::string(v.str());
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v.is_string() ? v : Value::string(v.str());
    return Value::string(html_escape(v.str()));
  }
  if (name == "lower") return Value::string(ascii_lower(need_string(v)));
  if (name == "upper") return Value::string(ascii_upper(need_string(v)));
  if (name == "title") return Value::string(py_title(need_string(v)));
  if (name == "capitalize") return Value::string(py_capitalize(need_string(v)));
  if (name == "replace") {
    const Value& c = a.get(2, "count", none);
    return Value::string(replace_all(need_string(v), a.get(0, "old", none).str(), a.get(1, "new", none).str(),
                                     c.is_none() ? -1 : int_arg(c, line, "count")));
  }
  if (name == "int") {
    if (v.kind == K::Int) return v;
    if (v.kind == K::Bool) return Value::integer(v.b);
    if (v.kind == K::Float) {
      if (auto x = float_to_int(v.f, line)) return Value::integer(*x);
    }
    if (v.is_string()) {
      std::optional<double> f;
      try {
        size_t used = 0;
        std::string t = py_strip(v.s, true, true, none);
        int64_t x = std::stoll(t, &used);
        if (used == t.size()) return Value::integer(x);
        f = std::stod(t);
      } catch (const std::exception&) {
      }
      if (f)
        if (auto x = float_to_int(*f, line)) return Value::integer(*x);
    }
    return a.get(0, "default", Value::integer(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_string()) {
      try {
        return Value::number(std::stod(v.s));
      } catch (const std::exception&) {
      }
    }
    return a.get(0, "default", Value::number(0.0));
  }
  if (name == "abs") {
    if (v.kind == K::Float) return Value::number(std::fabs(v.f));
    return Value::integer(std::llabs(int_arg(v, line, "abs() argument")));
  }
  if (name == "round") {
    int64_t prec = int_arg(a.get(0, "precision", Value::integer(0)), line, "round precision");
    std::string method = a.get(1, "method", Value::string("common")).str();
    double m = std::pow(10.0, static_cast<double>(prec)), x = v.as_double() * m;
    x = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
    return Value::number(x / m);
  }
  if (name == "default" || name == "d") {
    bool boolean = a.get(1, "boolean", Value::boolean(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, "default_value", Value::string(""));
    return v;
  }
  if (name == "join") {
    List items = iterate(v, line);
    std::string sep = a.get(0, "d", Value::string("")).str();
    const Value& attr = a.get(1, "attribute", none);
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) {
      if (k) out += sep;
      out += (attr.is_none() ? items[k] : attr_path(items[k], attr.str())).str();
    }
    return Value::string(out);
  }
  if (name == "first" || name == "last") {
    List items = iterate(v, line);
    if (items.empty()) return Value::undefined();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::make_list(iterate(v, line));
  if (name == "reverse") {
    if (v.is_string()) {
      auto spans = cp_spans(v.s);
      std::string r;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) r += v.s.substr(it->first, it->second);
      return Value::string(r);
    }
    List items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "sort") {
    List items = iterate(v, line);
    bool rev = a.get(0, "reverse", Value::boolean(false)).truthy();
    const Value& attr = a.get(2, "attribute", none);
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value kx = attr.is_none() ? x : attr_path(x, attr.str());
      const Value ky = attr.is_none() ? y : attr_path(y, attr.str());
      return rev ? compare(ky, kx) < 0 : compare(kx, ky) < 0;
    });
    return Value::make_list(std::move(items));
  }
  if (name == "unique") {
    List out;
    for (auto& x : iterate(v, line))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equals(x, y); })) out.push_back(x);
    return Value::make_list(std::move(out));
  }
  if (name == "items" || name == "dictsort") {
    if (v.is_undefined()) return Value::make_list();
    if (!v.is_dict()) error_at(line, "the " + name + " filter needs a mapping, not " + v.type_name());
    Args none_args;
    Value out;
    call_method(v, "items", none_args, line, out);
    if (name == "dictsort")
      std::stable_sort(out.list->begin(), out.list->end(),
                       [](const Value& x, const Value& y) { return (*x.list)[0].s < (*y.list)[0].s; });
    return out;
  }
  if (name == "map") {
    List items = iterate(v, line), out;
    const Value& attr = a.get(SIZE_MAX, "attribute", none);
    if (!attr.is_none()) {
      const Value& def = a.get(SIZE_MAX, "default", Value::undefined());
      for (auto& x : items) {
        Value r = attr_path(x, attr.str());
        out.push_back(r.is_undefined() && !def.is_undefined() ? def : r);
      }
    } else {
      if (a.pos.empty()) error_at(line, "map() needs a filter name or attribute=");
      std::string fname = a.pos[0].str();
      Args rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      for (auto& x : items) out.push_back(apply_filter(fname, x, rest, line));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool want = name == "select" || name == "selectattr";
    size_t first = by_attr ? 1 : 0;
    std::string attr = by_attr ? a.get(0, "attribute", none).str() : std::string();
    List out;
    for (auto& x : iterate(v, line)) {
      Value subject = by_attr ? attr_path(x, attr) : x;
      bool r;
      if (a.pos.size() <= first) {
        r = subject.truthy();
      } else {
        Args targs;
        targs.pos.assign(a.pos.begin() + first + 1, a.pos.end());
        r = apply_test(a.pos[first].str(), subject, targs, line);
      }
      if (r == want) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "indent") {
    const Value& w = a.get(0, "width", Value::integer(4));
    std::string pad = w.is_string() ? w.s : std::string(static_cast<size_t>(std::max<int64_t>(0, int_arg(w, line, "width"))), ' ');
    bool first = a.get(1, "first", Value::boolean(false)).truthy();
    bool blank = a.get(2, "blank", Value::boolean(false)).truthy();
    std::string s = need_string(v), out;
    size_t pos = 0;
    bool first_line = true;
    while (true) {
      size_t nl = s.find('\n', pos);
      std::string ln = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      bool add = first_line ? first : (blank || !py_strip(ln, true, true, none).empty());
      if (add && !(first_line && ln.empty() && !blank && false)) out += pad;
      out += ln;
      if (nl == std::string::npos) break;
      out += '\n';
      pos = nl + 1;
      first_line = false;
    }
    return Value::string(out);
  }
  if (name == "sum") {
    const Value& attr = a.get(SIZE_MAX, "attribute", none);
    Value total = a.get(1, "start", Value::integer(0));
    for (auto& x : iterate(v, line)) {
      const Value item = attr.is_none() ? x : attr_path(x, attr.str());
      if (!item.is_number() || !total.is_number()) error_at(line, "sum() of non-numbers");
      if (item.kind == K::Float || total.kind == K::Float)
        total = Value::number(total.as_double() + item.as_double());
      else
        total = Value::integer(total.i + (item.kind == K::Bool ? item.b : item.i));
    }
    return total;
  }
  if (name == "min" || name == "max") {
    List items = iterate(v, line);
    if (items.empty()) return Value::undefined();
    Value best = items[0];
    for (auto& x : items)
      if (name == "min" ? compare(x, best) < 0 : compare(x, best) > 0) best = x;
    return best;
  }
  if (name == "wordcount") return Value::integer(static_cast<int64_t>(py_split(need_string(v), none, -1).size()));
  if (name == "center") {
    int64_t width = int_arg(a.get(0, "width", Value::integer(80)), line, "width");
    std::string s = need_string(v);
    int64_t len = static_cast<int64_t>(py_len(s));
    if (len >= width) return Value::string(s);
    if (width - len > static_cast<int64_t>(Value::kMaxStringBytes)) error_at(line, "center(): width too large");
    int64_t total = width - len, left = total / 2 + (total & width & 1);
    return Value::string(std::string(left, ' ') + s + std::string(total - left, ' '));
  }
  if (name == "format") {
    List args = a.pos;
    return Value::string(format_percent(need_string(v), args, line));
  }
  if (name == "attr") return attr_path(v, a.get(0, "name", none).str());
  error_at(line, "unknown filter '" + name + "'");
}

}  // namespace sparq::jinja
