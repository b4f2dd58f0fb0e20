# Compiler settings shared by every stack target.
set(STACK_WARNINGS -Wall -Wextra -Werror -Wno-missing-field-initializers)

if(STACK_SANITIZER STREQUAL "asan")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # Internal consistency checks too costly for release builds.
  add_compile_definitions(STACK_EXPENSIVE_CHECKS=1)
elseif(STACK_SANITIZER STREQUAL "tsan")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT STACK_SANITIZER STREQUAL "none")
  message(FATAL_ERROR "STACK_SANITIZER must be none, asan or tsan")
endif()

if(STACK_FUZZ AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "STACK_FUZZ needs clang (libFuzzer)")
endif()

# stack_defaults(target): warnings-as-errors and the project's C++ settings.
function(stack_defaults target)
  target_compile_options(${target} PRIVATE ${STACK_WARNINGS})
  target_compile_features(${target} PUBLIC cxx_std_20)
endfunction()
