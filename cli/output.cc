#include "output.h"

#include <algorithm>
#include <iostream>

namespace stack::cli {

void PrintJson(const nlohmann::json& doc) {
  std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
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

}  // namespace stack::cli
