/* render.h - a decoded control response as text for people or as JSON for scripts.
 *
 * Text: the message on its own line, then each table under "name:", as aligned columns
 * (widths from the content, numbers right-aligned, upper-case header), or as "key  value"
 * lines when the table has one row, or "name: none" when it has none. Control characters and
 * invalid UTF-8 from the daemon are shown as '?', never sent to the terminal.
 *
 * JSON: {"status": N, "message": "...", "<table>": [{"<col>": value, ...}, ...], ...};
 * strings escaped per RFC 8259 with invalid UTF-8 replaced by U+FFFD, INT and REAL as numbers
 * (REAL in the shortest form that reads back exactly), null cells and NaN or infinities as
 * null.
 */
#ifndef HS_CTL_RENDER_H
#define HS_CTL_RENDER_H

#include <stdio.h>

#include "ctl/proto.h"

/* Both return 0, or -EIO when writing to f failed. */
int ctl_render_text(FILE *f, const struct ctl_response *resp);
int ctl_render_json(FILE *f, const struct ctl_response *resp);

/* Pieces, exposed for the tests and the CLI's messages. */
void ctl_json_string(FILE *f, const char *s);		/* with its quotes */
void ctl_text_string(FILE *f, const char *s);		/* sanitized for a terminal */
size_t ctl_text_width(const char *s);			/* columns ctl_text_string() takes */
void ctl_format_real(char *buf, size_t size, double v); /* shortest exact form */

#endif
