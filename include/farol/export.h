/* FAROL_API marks the functions of farol's public C API.  farol is built
 * with hidden visibility (-fvisibility=hidden): only what carries FAROL_API
 * (and luaopen_farol, see farol/lua.h) is visible outside farol.so. */
#ifndef FAROL_EXPORT_H
#define FAROL_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define FAROL_API __attribute__((visibility("default")))
#else
#define FAROL_API
#endif

#endif
