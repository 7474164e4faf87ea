/* Reads DT_NEEDED and the GLIBC_x.y version needs of an ELF64 file, checking every offset. */
#include "elf-needs.h"
#include "util.h"

#include <elf.h>

struct image {
	const uint8_t *p;
	size_t len;
};

/* Pointer to LEN bytes at OFF, or NULL when they are not all inside the file. */
static const void *at(const struct image *im, uint64_t off, uint64_t len)
{
	if (off > im->len || len > im->len - off)
		return NULL;
	return im->p + off;
}

static const char *str_at(const struct image *im, const Elf64_Shdr *strtab, uint64_t off)
{
	if (off >= strtab->sh_size)
		return NULL;
	const char *s = at(im, strtab->sh_offset + off, 1);
	if (!s)
		return NULL;
	size_t max = (size_t)(strtab->sh_size - off);
	return memchr(s, '\0', max) && at(im, strtab->sh_offset + off, strnlen(s, max) + 1) ? s : NULL;
}

static void note_glibc(unsigned *ret_major, unsigned *ret_minor, const char *v)
{
	unsigned major, minor;
	if (strncmp(v, "GLIBC_", 6) != 0 || sscanf(v + 6, "%u.%u", &major, &minor) != 2)
		return;
	if (major > *ret_major || (major == *ret_major && minor > *ret_minor)) {
		*ret_major = major;
		*ret_minor = minor;
	}
}

static int parse(const struct image *im, struct elf_needs *n)
{
	const Elf64_Ehdr *eh = at(im, 0, sizeof(*eh));
	if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_shentsize != sizeof(Elf64_Shdr))
		return -ENOEXEC;
	n->machine = eh->e_machine;
	const Elf64_Shdr *sh = at(im, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr));
	if (!sh)
		return -ENOEXEC;
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *s = &sh[i];
		if (s->sh_type != SHT_DYNAMIC && s->sh_type != SHT_GNU_verneed && s->sh_type != SHT_GNU_verdef)
			continue;
		if (s->sh_link >= eh->e_shnum || !at(im, s->sh_offset, s->sh_size))
			return -ENOEXEC;
		const Elf64_Shdr *strtab = &sh[s->sh_link];
		if (!at(im, strtab->sh_offset, strtab->sh_size))
			return -ENOEXEC;
		if (s->sh_type == SHT_DYNAMIC) {
			for (uint64_t off = 0; off + sizeof(Elf64_Dyn) <= s->sh_size; off += sizeof(Elf64_Dyn)) {
				const Elf64_Dyn *d = at(im, s->sh_offset + off, sizeof(*d));
				if (d->d_tag == DT_NULL)
					break;
				if (d->d_tag != DT_NEEDED)
					continue;
				const char *name = str_at(im, strtab, d->d_un.d_val);
				if (!name)
					return -ENOEXEC;
				int r = strv_push(&n->needed, name);
				if (r < 0)
					return r;
			}
			continue;
		}
		if (s->sh_type == SHT_GNU_verdef) {
			/* Verdef entries chain through vd_next; the first aux entry names the version. */
			uint64_t off = 0;
			for (unsigned k = 0; k < 4096; k++) {
				const Elf64_Verdef *vd = at(im, s->sh_offset + off, sizeof(*vd));
				if (!vd || off + sizeof(*vd) > s->sh_size)
					return -ENOEXEC;
				const Elf64_Verdaux *va = at(im, s->sh_offset + off + vd->vd_aux, sizeof(*va));
				if (!va || off + vd->vd_aux + sizeof(*va) > s->sh_size)
					return -ENOEXEC;
				const char *v = str_at(im, strtab, va->vda_name);
				if (!v)
					return -ENOEXEC;
				note_glibc(&n->defines_major, &n->defines_minor, v);
				if (!vd->vd_next)
					break;
				off += vd->vd_next;
			}
			continue;
		}
		/* Verneed entries chain through vn_next, their aux entries through vna_next. */
		uint64_t off = 0;
		for (unsigned k = 0; k < 4096; k++) {
			const Elf64_Verneed *vn = at(im, s->sh_offset + off, sizeof(*vn));
			if (!vn || off + sizeof(*vn) > s->sh_size)
				return -ENOEXEC;
			uint64_t aoff = off + vn->vn_aux;
			for (unsigned a = 0; a < vn->vn_cnt; a++) {
				const Elf64_Vernaux *va = at(im, s->sh_offset + aoff, sizeof(*va));
				if (!va || aoff + sizeof(*va) > s->sh_size)
					return -ENOEXEC;
				const char *v = str_at(im, strtab, va->vna_name);
				if (!v)
					return -ENOEXEC;
				note_glibc(&n->glibc_major, &n->glibc_minor, v);
				if (!va->vna_next)
					break;
				aoff += va->vna_next;
			}
			if (!vn->vn_next)
				break;
			off += vn->vn_next;
		}
	}
	if (!n->needed && (n->needed = calloc(1, sizeof(char *))) == NULL)
		return -ENOMEM;
	return 0;
}

int elf_read_needs(const char *path, struct elf_needs *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_file(path, 256u << 20, &buf, &len);
	if (r < 0)
		return r;
	struct image im = { (const uint8_t *)buf, len };
	struct elf_needs n = { 0 };
	r = parse(&im, &n);
	if (r < 0) {
		strv_free(n.needed);
		return r;
	}
	*ret = n;
	return 0;
}

/* The program interpreter's room (PT_INTERP) in BUF, its size in *RET_ROOM; NULL with *RET_R
 * -ENOEXEC (not such an ELF file, or the room outside it or without a NUL) or -ENOENT (none). */
static char *interp_room(void *buf, size_t len, size_t *ret_room, int *ret_r)
{
	struct image im = { buf, len };
	Elf64_Ehdr eh;
	*ret_r = -ENOEXEC;
	if (!at(&im, 0, sizeof(eh)))
		return NULL;
	memcpy(&eh, buf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    !at(&im, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr)))
		return NULL;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph; /* copied: the headers need not be aligned in BUF */
		memcpy(&ph, (char *)buf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_INTERP)
			continue;
		char *room = (char *)at(&im, ph.p_offset, ph.p_filesz);
		if (!room || ph.p_filesz == 0 || !memchr(room, '\0', ph.p_filesz))
			return NULL;
		*ret_room = ph.p_filesz;
		return room;
	}
	*ret_r = -ENOENT;
	return NULL;
}

int elf_set_interp(void *buf, size_t len, const char *interp, char **ret_old)
{
	size_t room_len;
	int r;
	char *room = interp_room(buf, len, &room_len, &r);
	if (!room)
		return r;
	size_t n = strlen(interp);
	if (n >= room_len)
		return -ENAMETOOLONG;
	if (ret_old && !(*ret_old = strdup(room)))
		return -ENOMEM;
	memset(room, 0, room_len);
	memcpy(room, interp, n);
	return 0;
}

bool elf_interp_is(const void *buf, size_t len, const char *interp)
{
	size_t room_len;
	int r;
	const char *room = interp_room((void *)buf, len, &room_len, &r);
	return room && STREQ(room, interp);
}

void elf_needs_free(struct elf_needs *n)
{
	strv_free(n->needed);
	n->needed = NULL;
}
