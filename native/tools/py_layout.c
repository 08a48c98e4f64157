/* Prints, as JSON, where the interpreter keeps what the allocation tracker
 * reads from its memory (python_frames.c): built against one interpreter's
 * own headers by gen_py_layouts.py, so the offsets come from the headers,
 * never from measuring by hand. Not part of libcyscope. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>

#include "internal/pycore_frame.h"

int main(void) {
  printf("{\n");
  printf("  \"python\": \"%s\",\n", PY_VERSION);
#if PY_VERSION_HEX >= 0x030D0000
  /* 3.13: the thread state points at its frame directly. */
  printf("  \"ts_cframe\": -1,\n  \"cframe_current_frame\": -1,\n");
  printf("  \"ts_frame\": %zu,\n", offsetof(PyThreadState, current_frame));
  printf("  \"frame_code\": %zu,\n", offsetof(_PyInterpreterFrame, f_executable));
  printf("  \"frame_instr\": %zu,\n", offsetof(_PyInterpreterFrame, instr_ptr));
#else
  printf("  \"ts_cframe\": %zu,\n", offsetof(PyThreadState, cframe));
  printf("  \"cframe_current_frame\": %zu,\n", offsetof(_PyCFrame, current_frame));
  printf("  \"ts_frame\": -1,\n");
  printf("  \"frame_code\": %zu,\n", offsetof(_PyInterpreterFrame, f_code));
  printf("  \"frame_instr\": %zu,\n", offsetof(_PyInterpreterFrame, prev_instr));
#endif
  printf("  \"frame_previous\": %zu,\n", offsetof(_PyInterpreterFrame, previous));
  printf("  \"frame_owner\": %zu,\n", offsetof(_PyInterpreterFrame, owner));
  printf("  \"owner_generator\": %d,\n", (int)FRAME_OWNED_BY_GENERATOR);
#if PY_VERSION_HEX >= 0x030C0000
  printf("  \"owner_cstack\": %d,\n", (int)FRAME_OWNED_BY_CSTACK);
#else
  printf("  \"owner_cstack\": -1,\n");
#endif
  printf("  \"code_filename\": %zu,\n", offsetof(PyCodeObject, co_filename));
  printf("  \"code_name\": %zu,\n", offsetof(PyCodeObject, co_name));
  printf("  \"code_firstlineno\": %zu,\n", offsetof(PyCodeObject, co_firstlineno));
  printf("  \"code_firsttraceable\": %zu,\n", offsetof(PyCodeObject, _co_firsttraceable));
  printf("  \"code_adaptive\": %zu,\n", offsetof(PyCodeObject, co_code_adaptive));
  printf("  \"object_type\": %zu,\n", offsetof(PyObject, ob_type));
  printf("  \"unicode_state\": %zu,\n", offsetof(PyASCIIObject, state));
  printf("  \"unicode_length\": %zu,\n", offsetof(PyASCIIObject, length));
  printf("  \"unicode_ascii_data\": %zu,\n", sizeof(PyASCIIObject));
  printf("  \"unicode_utf8\": %zu\n", offsetof(PyCompactUnicodeObject, utf8));
  printf("}\n");
  return 0;
}
