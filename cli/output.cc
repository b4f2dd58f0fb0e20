#include "output.h"

#include <algorithm>
#include <iostream>

namespace stack::cli {

namespace {
thread_local bool stdout_used = false;
thread_local nlohmann::json kdf_choices = nlohmann::json::array();
}  // namespace

void ResetCommandOutput() {
  stdout_used = false;
  kdf_choices = nlohmann::json::array();
}
void NoteStdoutUsed() { stdout_used = true; }
bool StdoutUsed() { return stdout_used; }

namespace {
// Forwards to std::cout's own buffer and notes that the writing thread's
// command printed something: "did this command print anything" is then
// known for every printer, not only those that remember to say so.
class NotingBuf : public std::streambuf {
 public:
  explicit NotingBuf(std::streambuf* inner) : inner_(inner) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    stdout_used = true;
    return inner_->sputc(traits_type::to_char_type(c));
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n > 0) stdout_used = true;
    return inner_->sputn(s, n);
  }
  int sync() override { return inner_->pubsync(); }

 private:
  std::streambuf* inner_;
};
}  // namespace

void TrackStdout() {
  static NotingBuf buf(std::cout.rdbuf());
  std::cout.rdbuf(&buf);
}

void ReportKdfChoice(const fde::KdfChoice& c) {
  nlohmann::json j = {{"type", c.type}, {"benchmark_target_ms", c.target_ms},
                      {"floor_hit", c.floor_hit}};
  std::string text = "stack: kdf: " + c.type + " ";
  if (c.type == "pbkdf2") {
    j["iterations"] = c.iterations;
    text += std::to_string(c.iterations) + " iterations";
  } else {
    j["time_cost"] = c.time_cost;
    j["memory_kib"] = c.memory_kib;
    j["parallelism"] = c.parallelism;
    j["memory_lowered"] = c.memory_lowered;
    text += "time cost " + std::to_string(c.time_cost) + ", memory " +
            std::to_string(c.memory_kib) + " KiB, " + std::to_string(c.parallelism) + " lanes";
  }
  kdf_choices.push_back(j);
  std::cerr << text << " (benchmarked for " << c.target_ms << " ms)\n";
  if (c.floor_hit || c.memory_lowered)
    std::cerr << "stack: warning: the KDF benchmark "
              << (c.floor_hit ? "hit its floor" : "lowered the memory from " +
                                                      std::to_string(c.asked_memory_kib) + " KiB")
              << ": this machine is slow or busy, and the keyslot is weaker than on a quiet "
                 "one; pin the cost for reproducible keyslots ("
              << (c.type == "pbkdf2" ? "--pbkdf2-iterations N" : "--kdf-memory KIB --kdf-time-cost N")
              << ")\n";
}

void PrintJson(const nlohmann::json& doc) {
  NoteStdoutUsed();
  const auto dump = [](const nlohmann::json& d) {
    std::cout << d.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  };
  if (doc.is_object() && !kdf_choices.empty()) {
    nlohmann::json with = doc;
    with["kdf"] = kdf_choices;
    dump(with);
  } else {
    dump(doc);
  }
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  NoteStdoutUsed();
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], EscapeText(r[i]).size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      const std::string cell = EscapeText(cells[i]);
      s += cell;
      if (i + 1 < cells.size()) s += std::string(width[i] - cell.size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  for (auto& r : rows) line(r);
}

void PrintError(const Status& st) {
  std::cerr << "stack: " << CodeName(st.code()) << ": " << EscapeText(st.message()) << "\n";
}

void ReportError(const Status& st, bool json) {
  PrintError(st);
  if (json && !StdoutUsed())
    PrintJson({{"error", {{"code", std::string(CodeName(st.code()))}, {"message", st.message()}}}});
  std::cout.flush();
}

}  // namespace stack::cli
