/* SPDX-License-Identifier: MIT */
/*
 * sw_blas.h - the few BLAS and LAPACK routines the core calls, declared
 * here rather than through a vendor header, so that swapping the BLAS is a
 * link-line change. The CBLAS enums are passed as their ABI values.
 */
#ifndef SW_BLAS_H
#define SW_BLAS_H

enum {
    SW_CBLAS_ROW_MAJOR = 101,
    SW_CBLAS_NO_TRANS = 111,
    SW_CBLAS_TRANS = 112,
    SW_CBLAS_UPPER = 121
};

void cblas_dsyrk(int order, int uplo, int trans, int n, int k, double alpha,
                 const double *a, int lda, double beta, double *c, int ldc);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda,
             int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
             const int *lda, double *b, const int *ldb, int *info);

/* OpenBLAS: our threads call BLAS on small blocks, so BLAS's own threads
 * are switched off for the duration of a parallel region. */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

#endif
